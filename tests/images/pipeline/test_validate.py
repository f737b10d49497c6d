"""validate: the Great Expectations suite passes good data and stops bad data with a report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from shipyard_pipeline import demo
from shipyard_pipeline.errors import EXIT_CHECK_FAILED, EXIT_ERROR

pytestmark = pytest.mark.usefixtures("shipyard_home", "mlflow_env")


@pytest.fixture(scope="module")
def corrupt_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.seed(tmp_path_factory.mktemp("corrupt"), bad=True)


@pytest.fixture(scope="module")
def drifted_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo rows with `monthly_charges` arriving as text, e.g. after an upstream export change."""
    path = demo.seed(tmp_path_factory.mktemp("drifted"))
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        frame = pd.read_sql_table(demo.TABLE, engine)
        frame["monthly_charges"] = frame["monthly_charges"].map(lambda v: f"${v:.2f}")
        frame.to_sql(
            demo.TABLE, engine, if_exists="replace", index=False, dtype={"event_time": sa.DateTime()}
        )
    finally:
        engine.dispose()
    return path


def test_demo_week_passes_and_the_report_sits_next_to_the_snapshot(make_runner) -> None:
    runner = make_runner()
    assert runner("ingest").code == 0
    outcome = runner("validate")
    assert outcome.code == 0, outcome.stderr
    result = outcome.result
    assert result["success"]
    assert result["expectations_failed"] == 0
    assert Path(result["report_uri"]).parent == Path(result["snapshot_uri"])
    assert "**passed**" in Path(result["report_uri"]).read_text()
    assert result["mlflow_run_url"].endswith(f"/runs/{result['mlflow_run_id']}")


def test_corrupt_rows_fail_with_exit_3_and_a_report_naming_each_problem(
    make_runner, spec_variant, corrupt_db
) -> None:
    runner = make_runner(spec_variant(source={"url": f"sqlite:///{corrupt_db}"}))
    assert runner("ingest").code == 0
    outcome = runner("validate")
    assert outcome.code == EXIT_CHECK_FAILED
    assert "failed 3/68 expectations" in outcome.stderr
    assert outcome.result is None  # nothing for the next task to pick up
    snapshot_dir = (
        runner.storage_root / "telco_churn" / "snapshots" / f"interval_start={runner.start:%Y-%m-%dT%H:%M:%S}"
    )
    report = (snapshot_dir / "_VALIDATION.md").read_text()
    failed = [line for line in report.splitlines() if line.startswith("| ❌")]
    assert any("not_be_null | tenure" in line for line in failed)
    assert any("be_between | monthly_charges" in line for line in failed)
    assert any("in_set | contract" in line and "Lifetime" in line for line in failed)


def test_a_number_arriving_as_text_is_schema_drift(make_runner, spec_variant, drifted_db) -> None:
    runner = make_runner(spec_variant(source={"url": f"sqlite:///{drifted_db}"}, expectations={"ranges": {}}))
    assert runner("ingest").code == 0
    outcome = runner("validate")
    assert outcome.code == EXIT_CHECK_FAILED
    assert "in_type_list(monthly_charges)" in outcome.stderr


def test_validate_without_a_snapshot_says_to_ingest_first(make_runner) -> None:
    outcome = make_runner()("validate")
    assert outcome.code == EXIT_ERROR
    assert "run ingest for this interval first" in outcome.stderr
