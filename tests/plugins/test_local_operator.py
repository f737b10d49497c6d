"""The local runner runs the real step CLI in the pipeline virtualenv: the result comes back as the
task's return value (XCom), output lines reach the task log, and the exit code decides retries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from support.servers import venv_python

from shipyard.operators import step_operator
from shipyard_spec import load_spec
from shipyard_spec.contract import Step, spec_sha256

WEEK_WITH_ROWS = (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC))
EMPTY_WEEK = (datetime(2026, 4, 6, tzinfo=UTC), datetime(2026, 4, 13, tzinfo=UTC))
ROWS = "customer_id,churn,event_time,tenure\nC1,1,2026-03-03T10:00:00,5\nC2,0,2026-03-04T11:00:00,12\n"


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    (tmp_path / "rows.csv").write_text(ROWS)
    spec = {
        "name": "tiny",
        "schedule": {"cron": "0 0 * * 1", "start_date": "2026-01-05"},
        "source": {"kind": "files", "paths": [str(tmp_path / "rows.csv")], "format": "csv"},
        "columns": {"id": "customer_id", "target": "churn", "event_time": "event_time"},
        "features": {"numeric": ["tenure"]},
        "mlflow": {"experiment": "tiny", "registered_model": "tiny"},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run_ingest(
    spec_path: Path, storage: Path, window: tuple[datetime, datetime], edit_after_parse: str | None = None
) -> dict:
    """The ingest task as the DAG builds it from the spec file; `edit_after_parse` is written
    to the file once the DAG has parsed it, before the task runs."""
    start, end = window
    operator = step_operator(
        Step.INGEST, load_spec(spec_path), runner="local", storage_root=str(storage), cron="0 0 * * 1",
        task_id="ingest",
    )  # fmt: skip
    if edit_after_parse is not None:
        spec_path.write_text(edit_after_parse)
    context = {
        "data_interval_start": start,
        "data_interval_end": end,
        "run_id": "scheduled__2026-03-02",
        "params": {"window_intervals": 1, "skip_tuning": False, "force_ingest": False},
        "dag_run": SimpleNamespace(run_after=end, consumed_asset_events=[]),
    }
    operator.render_template_fields(context)
    return operator.execute(context)


@pytest.fixture(autouse=True)
def pipeline_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_PIPELINE_PYTHON", venv_python("pipeline"))


def test_the_result_is_returned_and_the_output_streamed_to_the_task_log(
    spec_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_ingest(spec_path, tmp_path / "storage", WEEK_WITH_ROWS)
    assert (result["rows"], result["skipped"]) == (2, False)
    assert Path(result["data_uri"]).exists()
    assert (
        "ingest tiny: interval [2026-03-02T00:00:00+00:00, 2026-03-09T00:00:00+00:00)"
        in capsys.readouterr().out
    )


def test_a_failed_check_exit_3_fails_without_retry(spec_path: Path, tmp_path: Path) -> None:
    with pytest.raises(
        AirflowFailException, match=r"ingest: a check failed, not retrying \(exit 3\): .*empty interval"
    ):
        run_ingest(spec_path, tmp_path / "storage", EMPTY_WEEK)


def test_any_other_failure_is_left_to_retries(spec_path: Path, tmp_path: Path) -> None:
    (tmp_path / "rows.csv").unlink()
    with pytest.raises(
        AirflowException, match=r"ingest exited with code 1: shipyard-step ingest: .*rows.csv"
    ) as raised:
        run_ingest(spec_path, tmp_path / "storage", WEEK_WITH_ROWS)
    assert not isinstance(raised.value, AirflowFailException)


def test_a_spec_edited_after_the_dag_parsed_it_still_runs_as_the_dag_parsed_it(
    spec_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13: the step runs the text the DAG showed, not whatever the file holds by then."""
    edited = spec_path.read_text().replace("rows.csv", "gone.csv")
    dag_version = spec_path.read_text()
    result = run_ingest(spec_path, tmp_path / "storage", WEEK_WITH_ROWS, edit_after_parse=edited)
    assert result["rows"] == 2
    assert (
        f"spec sha256 {spec_sha256(dag_version)[:12]}" in capsys.readouterr().out
    )  # the task log says which
