"""The compatibility replay: logged requests sampled from the prediction log (newest first, the
requests a given version answered only, NaN as null, a part that does not parse skipped), then
replayed against real champion and challenger predictors before any traffic moves."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from rollout_support import MODEL_NAME, run_canary
from support.servers import REPO

from shipyard.rollout.controller import PROMOTED, ROLLED_BACK
from shipyard.rollout.local.load import load_records
from shipyard.rollout.replay import sample_logged_requests, send
from shipyard_spec import load_spec
from shipyard_spec.contract import (
    PredictionRecord,
    prediction_log_dir,
    prediction_log_part_name,
    prediction_log_partition,
    serving_name,
)

SPEC = load_spec(REPO / "dags/pipelines/telco_churn.yaml")


def partition(root: Path, day: str, pipeline: str = SPEC.name) -> Path:
    return Path(prediction_log_partition(prediction_log_dir(str(root), serving_name(pipeline)), day))


def write_part(root: Path, day: str, unix_ms: int, records: list[dict]) -> None:
    directory = partition(root, day)
    directory.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(record) + "\n" for record in records)
    (directory / prediction_log_part_name(unix_ms, 1)).write_text(lines)


def record(version: str, tenure: float) -> dict:
    inputs = {"tenure": tenure, "contract": None}
    return {PredictionRecord.TS: "2026-11-30T00:00:00Z", PredictionRecord.MODEL_VERSION: version,
            PredictionRecord.INPUTS: inputs, PredictionRecord.SCORE: 0.5}  # fmt: skip


def test_newest_rows_of_the_version_first_and_a_broken_part_skipped(tmp_path):
    write_part(tmp_path, "2026-11-29", 1000, [record("1", 1), record("1", 2)])
    write_part(tmp_path, "2026-11-30", 2000, [record("1", 3), record("2", 99), record("1", float("nan"))])
    broken = Path(
        prediction_log_partition(prediction_log_dir(str(tmp_path), serving_name(SPEC.name)), "2026-11-30")
    )
    (broken / prediction_log_part_name(3000, 1)).write_text("{not json\n")

    rows = sample_logged_requests(SPEC, limit=3, version="1", root=str(tmp_path))

    assert rows == [{"tenure": 3, "contract": None}, {"tenure": None, "contract": None},
                    {"tenure": 1, "contract": None}]  # fmt: skip
    assert len(sample_logged_requests(SPEC, limit=100, root=str(tmp_path))) == 5  # every version
    assert sample_logged_requests(SPEC, limit=10, root=str(tmp_path / "none")) == []


def logged_requests(tmp_path: Path, examples: Path, version: str) -> list[dict]:
    """The example rows as the champion's prediction log holds them, sampled back as the operator does."""
    records = [
        {PredictionRecord.TS: "2026-11-30T00:00:00Z", PredictionRecord.MODEL_VERSION: version,
         PredictionRecord.INPUTS: row, PredictionRecord.SCORE: 0.5}
        for row in load_records(examples)
    ]  # fmt: skip
    served = SPEC.model_copy(update={"name": MODEL_NAME})
    directory = partition(tmp_path, "2026-11-30", MODEL_NAME)
    directory.mkdir(parents=True)
    (directory / prediction_log_part_name(1000, 1)).write_text("".join(json.dumps(r) + "\n" for r in records))
    rows = sample_logged_requests(served, limit=20, version=version, root=str(tmp_path))
    return [{"request": f"logged request {i}", "inputs": row} for i, row in enumerate(rows)]


@pytest.mark.slow
def test_a_predictor_that_does_not_answer_costs_one_timeout_not_one_per_row():
    """A listening socket nobody serves (as a NetworkPolicy that drops packets looks): the first
    request times out and the other rows are not sent, each answered "no answer"."""
    with socket.create_server(("127.0.0.1", 0)) as hung:
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        started = time.monotonic()
        answers = send(url, MODEL_NAME, [{"tenure": i} for i in range(20)], timeout=0.5)
        elapsed = time.monotonic() - started
    assert len(answers) == 20
    assert {a.status for a in answers} == {None}
    assert not any(a.rejected for a in answers)  # no answer rejects nothing: the 4xx rule judges
    assert "Timeout" in answers[-1].message()
    assert elapsed < 5  # one timeout of 0.5 s, not twenty


def test_a_challenger_that_rejects_logged_requests_is_stopped_before_traffic_moves(
    local_stack, tmp_path, model_dir, narrow_model_dir
):
    """Trained without `monthly_charges`: the replay at 0 % finds the requests clients send
    refused, and the canary never gets a client's request."""
    replay = logged_requests(tmp_path, model_dir / "input_example.json", local_stack_version(local_stack))

    run = run_canary(local_stack, narrow_model_dir, examples=model_dir / "input_example.json",
                     replay_requests=replay)  # fmt: skip

    assert run.outcome.status == ROLLED_BACK
    assert f"the canary rejects {len(replay)} of {len(replay)} replayed requests the champion accepts" in (
        run.outcome.reason
    )
    assert "logged request 0: 400 " in run.outcome.reason
    assert "'monthly_charges'" in run.outcome.reason
    assert run.outcome.checks == []  # stopped before the first step
    assert set(run.requests) == {"200"}  # no client request reached the canary
    state = local_stack.state()
    assert (state["stable"]["release"]["version"], state["canary"]) == (run.stable.version, None)


@pytest.mark.slow
def test_a_compatible_challenger_passes_the_replay_and_is_promoted(local_stack, tmp_path, model_dir):
    replay = logged_requests(
        tmp_path, model_dir / "input_example.json", version=local_stack_version(local_stack)
    )

    run = run_canary(local_stack, model_dir, replay_requests=replay)

    assert run.outcome.status == PROMOTED, run.outcome.reason
    assert len(replay) == len(load_records(model_dir / "input_example.json"))
    assert set(run.requests) == {"200"}


def local_stack_version(backend) -> str:
    return backend.state()["stable"]["release"]["version"]
