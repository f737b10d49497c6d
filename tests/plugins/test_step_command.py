"""The step CLI arguments: one builder for both runners, options only where the step takes them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shipyard.step_command import STEPS, RunOptions, step_arguments, step_environment
from shipyard.window import Window
from shipyard_spec.contract import spec_sha256

WINDOW = Window(datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC))
SPEC_TEXT = "name: telco_churn\n# the spec's text as the DAG parsed it\n"
COMMON = [
    "--spec-sha256", "82581b8524c0e9092ed4fadce633bef8cda3bcf7f702b9fda833ae6f0402fcc0",
    "--interval-start", "2026-03-02T00:00:00+00:00",
    "--interval-end", "2026-03-09T00:00:00+00:00",
    "--run-id", "scheduled__2026-03-09",
    "--storage-root", "s3://bucket/shipyard",
]  # fmt: skip


def arguments(
    step: str, options: RunOptions, result_path: str | None = "/airflow/xcom/return.json"
) -> list[str]:
    return step_arguments(
        step,  # type: ignore[arg-type]
        spec_text=SPEC_TEXT,
        window=WINDOW,
        run_id="scheduled__2026-03-09",
        storage_root="s3://bucket/shipyard",
        result_path=result_path,
        options=options,
    )


@pytest.mark.parametrize("step", [*STEPS, "drift"])
def test_every_step_gets_the_common_contract(step: str) -> None:
    args = arguments(step, RunOptions(window_intervals=26))
    assert args[: 1 + len(COMMON)] == [step, *COMMON]
    assert args[args.index("--result-path") + 1] == "/airflow/xcom/return.json"


@pytest.mark.parametrize(
    ("step", "options", "extra"),
    [
        ("ingest", RunOptions(26), []),
        ("ingest", RunOptions(26, force_ingest=True), ["--force"]),
        ("train", RunOptions(26), ["--window-intervals", "26"]),
        ("train", RunOptions(4, skip_tuning=True), ["--window-intervals", "4", "--skip-tuning"]),
        ("validate", RunOptions(4, skip_tuning=True, force_ingest=True), []),
        ("register", RunOptions(4, skip_tuning=True, force_ingest=True), []),
        ("drift", RunOptions(4, skip_tuning=True, force_ingest=True), []),
        ("train", RunOptions(), []),  # no trigger form: the spec's window, tuning on
    ],
)
def test_step_options_go_only_to_the_step_that_takes_them(
    step: str, options: RunOptions, extra: list[str]
) -> None:
    assert arguments(step, options, result_path=None) == [step, *COMMON, *extra]


def test_options_come_from_the_trigger_form_params() -> None:
    params = {"window_intervals": "8", "skip_tuning": True, "force_ingest": False}
    assert RunOptions.from_params(params) == RunOptions(8, skip_tuning=True, force_ingest=False)


def test_a_dag_without_a_trigger_form_gets_the_step_defaults() -> None:
    assert RunOptions.from_params({}) == RunOptions(
        window_intervals=None, skip_tuning=False, force_ingest=False
    )


def test_the_step_gets_the_text_the_dag_parsed_and_its_hash() -> None:
    """The spec travels with the call (both runners), never as a path a pod may not have."""
    environment = step_environment(SPEC_TEXT)
    assert environment == {"SHIPYARD_SPEC_YAML": SPEC_TEXT}
    assert [type(name) for name in environment] == [str]  # the provider dumps the pod with PyYAML
    args = arguments("train", RunOptions())
    assert args[args.index("--spec-sha256") + 1] == spec_sha256(SPEC_TEXT)
    assert "--spec" not in args
