"""The step CLI contract: shared arguments, exit codes, one-line causes, bounded MLflow retries."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from support.servers import free_port

from shipyard_pipeline.cli import build_parser, main
from shipyard_spec.contract import POD_RESULT_PATH, SPEC_SHA256_OPTION, Env, ExitCode, Step, spec_sha256


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


def handed_over(runner, step: str, text: str, *, copy: str | None = None) -> list[str]:
    """The runner's arguments as the DAG passes them: the spec's hash, no spec file (or `copy`)."""
    arguments = runner.arguments(step)
    at = arguments.index("--spec")
    del arguments[at : at + 2]
    arguments[1:1] = [SPEC_SHA256_OPTION, spec_sha256(text), *(["--spec", copy] if copy else [])]
    return arguments


def run_main(arguments: list[str], capsys) -> tuple[int, str]:
    code = main(arguments)
    return code, capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.usefixtures("shipyard_home")
def test_the_step_runs_the_spec_handed_over_not_the_file(make_runner, spec_variant, monkeypatch) -> None:
    """Issue 13: what the DAG parsed runs, even after the file was edited or deleted."""
    dag_version = spec_variant()
    text = dag_version.read_text()
    dag_version.write_text(text.replace("customers", "no_such_table"))
    runner = make_runner(dag_version)
    monkeypatch.setenv(Env.SPEC_YAML, text)
    assert main(handed_over(runner, "ingest", text)) == ExitCode.OK
    assert json.loads((runner.results / "ingest.json").read_text())["rows"] > 0


def test_a_handed_over_spec_that_is_not_the_one_the_dag_parsed_is_refused(
    make_runner, telco_spec, monkeypatch, capsys
) -> None:
    text = telco_spec.read_text()
    arguments = handed_over(make_runner(), "ingest", text)
    monkeypatch.setenv(Env.SPEC_YAML, text[: len(text) // 2])
    code, cause = run_main(arguments, capsys)
    assert code == ExitCode.ERROR
    cut = text[: len(text) // 2]
    assert f"sha256 {spec_sha256(cut)} but the DAG parsed sha256 {spec_sha256(text)}" in cause


def test_a_stale_copy_of_the_spec_is_an_error_naming_the_file_and_both_hashes(
    make_runner, spec_variant, telco_spec, monkeypatch, capsys
) -> None:
    """A copy next to the step (an old ConfigMap, a file given by hand) must be the DAG's spec."""
    text = telco_spec.read_text()
    stale = spec_variant(description="edited after the DAG parsed it")
    monkeypatch.setenv(Env.SPEC_YAML, text)
    code, cause = run_main(handed_over(make_runner(), "ingest", text, copy=str(stale)), capsys)
    assert code == ExitCode.ERROR
    assert f"spec file {stale} has sha256 {spec_sha256(stale.read_text())}" in cause
    assert f"the DAG parsed sha256 {spec_sha256(text)}" in cause


def test_a_hash_without_the_spec_is_an_error_naming_the_variable(
    make_runner, telco_spec, monkeypatch, capsys
) -> None:
    monkeypatch.delenv(Env.SPEC_YAML, raising=False)
    code, cause = run_main(handed_over(make_runner(), "ingest", telco_spec.read_text()), capsys)
    assert code == ExitCode.ERROR
    assert "$SHIPYARD_SPEC_YAML is not set" in cause
