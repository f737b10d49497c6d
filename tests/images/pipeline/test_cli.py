"""The step CLI contract: shared arguments, exit codes, one-line causes, bounded MLflow retries."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from support.servers import free_port

from shipyard_pipeline.cli import STEPS, build_parser
from shipyard_pipeline.errors import EXIT_ERROR


def test_every_step_takes_the_common_arguments() -> None:
    parser = build_parser()
    for step in [*STEPS, "drift"]:
        args = parser.parse_args(
            [step, "--spec", "s.yaml", "--interval-start", "2026-01-05", "--interval-end", "2026-01-12",
             "--run-id", "r", "--storage-root", "/tmp/x"]
        )  # fmt: skip
        assert args.result_path == "/airflow/xcom/return.json"
        assert args.interval_start.tzinfo is not None


def test_console_script_lists_the_steps() -> None:
    output = subprocess.run(
        [sys.executable, "-m", "shipyard_pipeline", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for step in ("ingest", "validate", "train", "evaluate", "register"):
        assert step in output


def test_invalid_spec_fails_naming_the_field(make_runner, spec_variant) -> None:
    spec = spec_variant(split={"test_fraction": 1.5})
    outcome = make_runner(spec)("ingest")
    assert outcome.code == EXIT_ERROR
    assert "split.test_fraction" in outcome.stderr
    assert outcome.stderr.count("\n") == 1  # one line


def test_interval_end_before_start_is_refused(make_runner, last_week) -> None:
    outcome = make_runner(start=last_week[1], end=last_week[0])("ingest")
    assert outcome.code == EXIT_ERROR
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
    assert outcome.code == EXIT_ERROR
    assert "unreachable after 2 attempts" in outcome.stderr
    assert time.monotonic() - started < 60
