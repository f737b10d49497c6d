"""The step CLI contract: shared arguments, exit codes, one-line causes, bounded MLflow retries."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from support.servers import free_port

from shipyard_pipeline.cli import build_parser
from shipyard_spec.contract import POD_RESULT_PATH, ExitCode, Step


def test_every_step_takes_the_common_arguments() -> None:
    parser = build_parser()
    for step in Step:
        args = parser.parse_args(
            [step, "--spec", "s.yaml", "--interval-start", "2026-01-05", "--interval-end", "2026-01-12",
             "--run-id", "r", "--storage-root", "/tmp/x"]
        )  # fmt: skip
        assert args.result_path == POD_RESULT_PATH
        assert args.interval_start.tzinfo is not None


def test_console_script_lists_the_steps() -> None:
    output = subprocess.run(
        [sys.executable, "-m", "shipyard_pipeline", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for step in Step:
        assert step in output


def test_invalid_spec_fails_naming_the_field(make_runner, spec_variant) -> None:
    spec = spec_variant(split={"test_fraction": 1.5})
    outcome = make_runner(spec)("ingest")
    assert outcome.code == ExitCode.ERROR
    assert "split.test_fraction" in outcome.stderr
    assert outcome.stderr.count("\n") == 1  # one line


def test_interval_end_before_start_is_refused(make_runner, last_week) -> None:
    outcome = make_runner(start=last_week[1], end=last_week[0])("ingest")
    assert outcome.code == ExitCode.ERROR
    assert "is not after interval start" in outcome.stderr


@pytest.mark.usefixtures("shipyard_home")
def test_unreachable_mlflow_fails_after_bounded_retries(make_runner, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("SHIPYARD_MLFLOW_CONNECT_ATTEMPTS", "2")
    monkeypatch.setenv("SHIPYARD_MLFLOW_CONNECT_BACKOFF", "0.2")
    runner = make_runner()
    assert runner("ingest").code == 0  # ingest needs no MLflow
    started = time.monotonic()
    outcome = runner("validate")
    assert outcome.code == ExitCode.ERROR
    assert "unreachable after 2 attempts" in outcome.stderr
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("step", [Step.VALIDATE, Step.DRIFT])
def test_a_tracked_step_without_a_tracking_uri_fails_naming_it(step, make_runner, monkeypatch) -> None:
    """Not a silent local `mlruns` store: drift used to report `no_champion` and exit 0."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    outcome = make_runner()(step)
    assert (outcome.code, outcome.result) == (ExitCode.ERROR, None)
    assert f"shipyard-step {step}: MLFLOW_TRACKING_URI is not set" in outcome.stderr


def test_drift_waits_for_mlflow_like_the_other_steps(make_runner, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("SHIPYARD_MLFLOW_CONNECT_ATTEMPTS", "2")
    monkeypatch.setenv("SHIPYARD_MLFLOW_CONNECT_BACKOFF", "0.2")
    outcome = make_runner()(Step.DRIFT)
    assert outcome.code == ExitCode.ERROR
    assert outcome.stderr.startswith("shipyard-step drift: MLflow at")
    assert "unreachable after 2 attempts" in outcome.stderr
