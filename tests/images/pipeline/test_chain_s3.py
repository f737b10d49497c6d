"""The production path on object storage, end to end.

ingest → validate → train → evaluate → register → drift with `--storage-root s3://…` on a real
S3-compatible server on loopback (moto's standalone server) and MLflow configured as the chart
configures it (`--serve-artifacts`, artifacts destination `s3://…`). The steps run as
`shipyard-step` subprocesses with the environment a step pod gets (endpoint in
AWS_ENDPOINT_URL_S3, credentials, MLFLOW_TRACKING_URI). The registered version's serving URI is
then downloaded exactly as KServe's storage initializer would, served by the real predictor
(serving virtualenv), and its prediction log is what the drift step reads from the bucket.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow.sklearn
import pandas as pd
import pytest
from mlflow import MlflowClient
from step_process import run_cli
from support.servers import free_port, stop_process, venv_python, wait_http_ok

from shipyard_pipeline import demo, storage
from shipyard_spec import load_spec
from shipyard_spec.contract import (
    SERVING_MODEL_FILES,
    Alias,
    Env,
    Step,
    Tag,
    default_prediction_log_root,
    prediction_log_dir,
    serving_name,
)

PIPELINE = "telco_churn"
MODEL = serving_name(PIPELINE)  # the InferenceService name the predictor serves and logs under
TRAINING_STEPS = [Step.INGEST, Step.VALIDATE, Step.TRAIN, Step.EVALUATE, Step.REGISTER]


@pytest.fixture(scope="module")
def chain(
    tmp_path_factory: pytest.TempPathFactory,
    shipyard_home: Path,
    telco_spec: Path,
    s3_env: dict[str, str],
    s3_bucket: str,
    s3_mlflow_uri: str,
    last_week: tuple[datetime, datetime],
) -> dict[str, Any]:
    start, end = last_week
    storage_root = f"s3://{s3_bucket}/chain-{uuid.uuid4().hex[:8]}"
    run_id = f"scheduled__{end.isoformat()}"
    common = [
        "--spec", str(telco_spec), "--interval-start", start.isoformat(), "--interval-end", end.isoformat(),
        "--run-id", run_id, "--storage-root", storage_root,
    ]  # fmt: skip
    env = {
        **os.environ,
        **s3_env,
        Env.MLFLOW_TRACKING_URI: s3_mlflow_uri,
        Env.HOME: str(shipyard_home),
    }
    env.pop(Env.PREDICTION_LOG_URI, None)  # the drift step falls back to {storage_root}/prediction_logs
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    result_dir = tmp_path_factory.mktemp("chain-s3-results")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (*s3_env.items(), (Env.MLFLOW_TRACKING_URI, s3_mlflow_uri)):
            patch.setenv(name, value)  # this process reads the bucket and MLflow too
        history = load_spec(telco_spec).training.window_intervals - 1
        started = time.monotonic()
        assert len(demo.ingest_history(telco_spec, storage_root, history, end=end)) == history
        seconds[f"ingest-history ({history} weeks, one process)"] = time.monotonic() - started
        for step in TRAINING_STEPS:
            results[step], seconds[step] = run_cli(step, common, result_dir, env)
        yield {
            "results": results,
            "seconds": seconds,
            "storage_root": storage_root,
            "run_id": run_id,
            "env": env,
            "result_dir": result_dir,
            "spec": telco_spec,
        }
    print("\nstep wall times, storage and MLflow artifacts on S3 (moto), subprocess incl. interpreter start:")
    for step, elapsed in seconds.items():
        print(f"  {step:<40} {elapsed:6.1f} s")


def download(uri: str, destination: Path) -> Path:
    """Emulated boundary (no cluster here): what KServe's storage initializer container does with
    an s3:// storageUri — copy every object under the prefix to /mnt/models."""
    fs, path = storage.filesystem(uri)
    fs.get(f"{path.rstrip('/')}/", str(destination), recursive=True)
    return destination


def predict(url: str, instances: list[dict[str, Any]], ids: list[str] | None = None) -> list[float]:
    body: dict[str, Any] = {"instances": instances, **({"ids": ids} if ids else {})}
    request = urllib.request.Request(
        f"{url}/v1/models/{MODEL}:predict",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())["predictions"]


def json_safe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """JSON null for missing values (NaN), as a client sends them."""
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()} for row in rows
    ]


@pytest.fixture(scope="module")
def served(chain: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The serving URI downloaded and served by the real predictor; the test split sent to it."""
    registered = chain["results"][Step.REGISTER]
    workdir = tmp_path_factory.mktemp("served")
    model_dir = download(registered["serving_uri"], workdir / "mnt-models")
    example = json.loads((model_dir / "input_example.json").read_text())
    example_rows = [dict(zip(example["columns"], row, strict=True)) for row in example["data"]]
    trained = chain["results"][Step.TRAIN]
    columns = [*trained["features"]["numeric"], *trained["features"]["categorical"]]
    fs, path = storage.filesystem(storage.join(trained["split_uri"], "test.parquet"))
    with fs.open(path, "rb") as handle:
        test = pd.read_parquet(handle)
    traffic = json_safe(test[columns].astype(object).to_dict(orient="records"))

    # The predictor logs every row straight into the bucket, as on KServe with the chart's
    # SHIPYARD_PREDICTION_LOG_URI (credentials and endpoint from the environment, like a pod's).
    log_root = default_prediction_log_root(chain["storage_root"])
    port = free_port()
    output = workdir / "predictor.log"
    command = [
        venv_python("serving"), "-m", "shipyard_serving", "--model_name", MODEL,
        "--model_dir", str(model_dir), "--model_version", registered["version"], "--http_port", str(port),
        "--max_batch_size", "10000", "--prediction_log_uri", log_root,
        "--prediction_log_sample_rate", "1", "--prediction_log_flush_seconds", "0.2",
    ]  # fmt: skip
    with output.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=chain["env"])
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http_ok(f"{url}/v2/models/{MODEL}/ready", 120, process)
            example_scores = predict(url, json_safe(example_rows))
            traffic_scores = predict(url, traffic, ids=test["customer_id"].astype(str).tolist())
        except Exception:
            print(output.read_text())
            raise
        finally:
            stop_process(process, timeout=30)  # flushes the prediction log
    fs, log_dir = storage.filesystem(prediction_log_dir(log_root, MODEL))
    parts = sorted(fs.glob(f"{log_dir}/date=*/part-*.jsonl"))
    return {
        "model_dir": model_dir,
        "example": example,
        "example_scores": example_scores,
        "traffic_rows": len(traffic_scores),
        "log_parts": len(parts),
    }


@pytest.fixture(scope="module")
def drift(chain: dict[str, Any], served: dict[str, Any], s3_mlflow_uri: str) -> dict[str, Any]:
    """The champion's day of traffic checked by the drift step, reading from the bucket."""
    registered = chain["results"][Step.REGISTER]
    # The rollout promotes a version this way once its canary passed (not part of this chain).
    MlflowClient(s3_mlflow_uri).set_registered_model_alias(PIPELINE, Alias.CHAMPION, registered["version"])
    now = datetime.now(UTC)
    common = [
        "--spec", str(chain["spec"]), "--interval-start", (now - timedelta(hours=12)).isoformat(),
        "--interval-end", (now + timedelta(hours=12)).isoformat(), "--run-id", "drift__s3",
        "--storage-root", chain["storage_root"],
    ]  # fmt: skip
    result, chain["seconds"][Step.DRIFT] = run_cli(Step.DRIFT, common, chain["result_dir"], chain["env"])
    return result


def test_every_output_lives_in_the_bucket(chain: dict[str, Any]) -> None:
    results, root = chain["results"], chain["storage_root"]
    assert results[Step.INGEST]["snapshot_uri"].startswith(f"{root}/{PIPELINE}/snapshots/")
    assert results[Step.VALIDATE]["report_uri"].startswith(root)
    assert results[Step.TRAIN]["snapshots"] == load_spec(chain["spec"]).training.window_intervals
    assert results[Step.EVALUATE]["evaluation_uri"].startswith(root)
    assert storage.exists(results[Step.EVALUATE]["model_card_uri"])
    assert not Path("s3:").exists()  # nothing went to a local directory named like the URI


def test_the_registered_version_records_an_s3_serving_uri_holding_the_predictors_files(
    chain: dict[str, Any], s3_mlflow_uri: str
) -> None:
    registered = chain["results"][Step.REGISTER]
    serving_uri = registered["serving_uri"]
    assert serving_uri == f"{chain['storage_root']}/{PIPELINE}/models/{registered['version']}"
    assert registered["download_uri"].startswith("mlflow-artifacts:/")  # what KServe cannot read
    version = MlflowClient(s3_mlflow_uri).get_model_version(PIPELINE, registered["version"])
    assert version.tags[Tag.SERVING_URI] == serving_uri
    fs, path = storage.filesystem(serving_uri)
    assert sorted(Path(p).name for p in fs.ls(path)) == sorted(SERVING_MODEL_FILES)


def test_the_predictor_loads_the_serving_uri_and_scores_like_the_training_time_model(
    chain: dict[str, Any], served: dict[str, Any], s3_mlflow_uri: str
) -> None:
    mlflow.set_tracking_uri(s3_mlflow_uri)
    model = mlflow.sklearn.load_model(chain["results"][Step.TRAIN]["model_uri"])
    example = served["example"]
    expected = model.predict_proba(pd.DataFrame(example["data"], columns=example["columns"]))[:, 1]
    assert served["example_scores"] == expected.tolist()


def test_drift_reads_the_predictors_log_from_the_bucket(
    chain: dict[str, Any], served: dict[str, Any], drift: dict[str, Any]
) -> None:
    assert drift["log_root"] == f"{chain['storage_root']}/prediction_logs"
    sent = chain["results"][Step.TRAIN]["rows"]["test"] + len(served["example"]["data"])
    assert drift["counts"]["rows_read"] == sent
    assert (drift["status"], drift["drift_detected"]) == ("checked", False)  # its own test set: no drift
    assert drift["report_uri"].startswith(f"{chain['storage_root']}/{PIPELINE}/runs/drift__s3/drift/")
    assert storage.exists(drift["report_uri"])
