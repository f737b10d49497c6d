"""The Spark engine on object storage: validate → train → evaluate with `--storage-root s3://…`.

The steps of the Telco pipeline with `engine: spark` (`local[2]`) run as `shipyard-step` subprocesses
with the environment a step pod gets (endpoint, region and access key pair; MLflow as the chart runs
it), on a real S3-compatible server on loopback (moto's standalone server). Spark reads the
snapshot (validate), the training window (train) and the test split (evaluate) as `s3a://` through
Hadoop's S3A filesystem (hadoop-aws and the AWS SDK of images/pipeline/spark-jars.txt, which
`make spark` fetches); what the steps publish goes to the same bucket through s3fs.

The snapshots are ingested in this process by the pandas engine: Spark's ingest reads the source
over JDBC and publishes through storage.py like pandas' (test_chain_s3.py), reading and writing
nothing of the storage root through Spark, and its snapshots are the pandas ones
(test_spark_engine.py); a step subprocess of its own would add a JVM start and test nothing here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow.sklearn
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from step_process import run_cli
from support.specs import spark_pipeline

from shipyard_pipeline import dataset, demo, storage
from shipyard_pipeline.training_window import PARTS
from shipyard_spec import load_spec
from shipyard_spec.contract import Env, Step

pytestmark = pytest.mark.spark

PIPELINE = "telco_spark_s3"
WEEKS = 3
STEPS = (Step.VALIDATE, Step.TRAIN, Step.EVALUATE)
# evaluate's Spark summary orders scores in bins of 1e-4 (spark_evaluate): its AUC is within 1e-3.
AUC_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def chain(
    tmp_path_factory: pytest.TempPathFactory,
    shipyard_home: Path,
    s3_env: dict[str, str],
    s3_bucket: str,
    s3_mlflow_uri: str,
    last_week: tuple[datetime, datetime],
) -> dict[str, Any]:
    start, end = last_week
    workdir = tmp_path_factory.mktemp("spark-s3")
    spec = yaml.safe_load(spark_pipeline(workdir).read_text())
    spec["name"] = PIPELINE
    spec["training"]["window_intervals"] = WEEKS
    spec["model"]["params"] = {"n_estimators": 30, "max_depth": 3}
    spec["gates"] = {"min_roc_auc": 0.5, "max_baseline_shortfall": 1.0}
    spec["mlflow"] = {"experiment": PIPELINE, "registered_model": PIPELINE}
    spec_path = workdir / f"{PIPELINE}.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    ingested = workdir / f"{PIPELINE}_pandas.yaml"  # see the module doc
    ingested.write_text(yaml.safe_dump({**spec, "engine": "pandas"}))
    storage_root = f"s3://{s3_bucket}/spark-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        **s3_env,
        Env.MLFLOW_TRACKING_URI: s3_mlflow_uri,
        Env.HOME: str(shipyard_home),
        Env.SPARK_MASTER: "local[2]",
    }
    common = [
        "--spec", str(spec_path), "--interval-start", start.isoformat(), "--interval-end", end.isoformat(),
        "--run-id", "scheduled__spark_s3", "--storage-root", storage_root,
    ]  # fmt: skip
    results: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (*s3_env.items(), (Env.MLFLOW_TRACKING_URI, s3_mlflow_uri)):
            patch.setenv(name, value)  # this process reads the bucket and MLflow too
        # The WEEKS weeks up to `end`, the run's own interval the newest.
        demo.ingest_history(ingested, storage_root, WEEKS, end=end + timedelta(weeks=1))
        for step in STEPS:
            results[step], results[f"{step}_seconds"] = run_cli(step, common, workdir, env)
        yield {"results": results, "storage_root": storage_root, "spec": load_spec(spec_path), "env": env}
    print("\nSpark steps on S3 (moto), subprocess incl. interpreter and JVM start:")
    for step in STEPS:
        print(f"  {step:<10} {results[f'{step}_seconds']:6.1f} s")


def objects(uri: str) -> list[str]:
    fs, path = storage.filesystem(uri)
    return [name.removeprefix(path).lstrip("/") for name in fs.find(path)]


def test_the_snapshots_split_and_evaluation_are_objects_in_the_bucket(chain: dict[str, Any]) -> None:
    results, root = chain["results"], chain["storage_root"]
    snapshot = results[Step.VALIDATE]["snapshot_uri"]
    assert snapshot.startswith(f"{root}/{PIPELINE}/snapshots/")
    assert "data.parquet" in objects(snapshot)
    assert results[Step.VALIDATE]["success"] is True  # Great Expectations' Spark datasource read it
    train = results[Step.TRAIN]
    assert (train["engine"], train["snapshots"]) == ("spark", WEEKS)
    assert sorted(objects(train["split_uri"])) == sorted(f"{part}.parquet" for part in PARTS)
    assert storage.exists(results[Step.EVALUATE]["evaluation_uri"])
    assert not Path("s3a:").exists()  # nothing went to a local directory named like the URI
    assert not Path("s3:").exists()


def test_evaluate_on_spark_scores_the_test_split_in_the_bucket_as_pandas_does(
    chain: dict[str, Any], s3_mlflow_uri: str
) -> None:
    """The AUC the executors computed from the s3a:// test split is the one of every row in pandas."""
    spec, train = chain["spec"], chain["results"][Step.TRAIN]
    fs, path = storage.filesystem(storage.join(train["split_uri"], "test.parquet"))
    with fs.open(path, "rb") as handle:
        test = pd.read_parquet(handle)
    assert len(test) == train["rows"]["test"]
    mlflow.set_tracking_uri(s3_mlflow_uri)
    scores = mlflow.sklearn.load_model(train["model_uri"]).predict_proba(test)[:, 1]
    expected = roc_auc_score(dataset.target_vector(spec, test[spec.columns.target]), scores)
    found = chain["results"][Step.EVALUATE]["metrics"]["roc_auc"]
    assert abs(found - expected) <= AUC_TOLERANCE, (found, expected)
    assert found > 0.75


# What a Spark step does first with a snapshot, in a process of its own: a JVM reads its environment once.
READ_WITH_SPARK = """
import sys
from shipyard_pipeline import spark_engine, spark_storage
with spark_engine.session("no-credentials") as spark:
    spark_storage.read_parquet(spark, sys.argv[1])
"""


def test_without_credentials_spark_fails_naming_them(chain: dict[str, Any]) -> None:
    env = {k: v for k, v in chain["env"].items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    # Nowhere else to look: no profile file and no instance metadata (which is not on loopback).
    env |= {
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
    }
    snapshot = storage.join(chain["results"][Step.VALIDATE]["snapshot_uri"], "data.parquet")
    command = [sys.executable, "-c", READ_WITH_SPARK, snapshot]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode != 0
    errors = [line for line in completed.stderr.splitlines() if line.startswith("shipyard_pipeline.errors")]
    assert errors, completed.stderr[-3000:]
    assert errors[0].startswith(f"shipyard_pipeline.errors.StepError: Spark cannot read {snapshot}: ")
    assert "Unable to load credentials from any of the providers" in errors[0]  # the AWS SDK's answer
