"""validate: the Great Expectations suite passes good data and stops bad data with a report."""

from __future__ import annotations

from pathlib import Path

import pytest
from awkward_source import charges_as_text

from shipyard_pipeline import demo
from shipyard_spec.contract import ExitCode

pytestmark = pytest.mark.usefixtures("shipyard_home", "mlflow_env")


@pytest.fixture(scope="module")
def corrupt_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.seed(tmp_path_factory.mktemp("corrupt"), bad=True)


@pytest.fixture(scope="module")
def drifted_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo rows with `monthly_charges` arriving as text, e.g. after an upstream export change."""
    return charges_as_text(demo.seed(tmp_path_factory.mktemp("drifted")), "monthly_charges")


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
    assert outcome.code == ExitCode.CHECK_FAILED
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
    assert outcome.code == ExitCode.CHECK_FAILED
    assert "in_type_list(monthly_charges)" in outcome.stderr


def test_validate_without_a_snapshot_says_to_ingest_first(make_runner) -> None:
    outcome = make_runner()("validate")
    assert outcome.code == ExitCode.ERROR
    assert "run ingest for this interval first" in outcome.stderr


def test_a_failed_snapshot_is_quarantined_until_a_fixed_reingest_validates(
    make_runner, spec_variant, corrupt_db, shipyard_home, last_week, monkeypatch
) -> None:
    """The next run's training window must not include data that failed validation."""
    spec = spec_variant(source={"url": "sqlite:///${QUARANTINE_TEST_DB}"})
    monkeypatch.setenv("QUARANTINE_TEST_DB", str(shipyard_home / "data" / "telco_churn.db"))
    week = last_week[1] - last_week[0]
    earlier = make_runner(spec, start=last_week[0] - week, end=last_week[0])
    assert earlier("ingest").code == 0
    runner = make_runner(spec)
    monkeypatch.setenv("QUARANTINE_TEST_DB", str(corrupt_db))
    assert runner("ingest").code == 0
    assert runner("validate").code == ExitCode.CHECK_FAILED
    marker = (
        runner.storage_root / "telco_churn" / "snapshots" / f"interval_start={runner.start:%Y-%m-%dT%H:%M:%S}"
    )
    assert "failed 3/68 expectations" in (marker / "_QUARANTINED.json").read_text()

    train = ("train", "--window-intervals", "2", "--skip-tuning")
    trained = runner(*train).result
    assert (trained["snapshots"], trained["window"][1]) == (1, last_week[0].isoformat())
    assert runner("ingest").result["quarantined"] is True  # a plain retry does not lift it

    monkeypatch.setenv("QUARANTINE_TEST_DB", str(shipyard_home / "data" / "telco_churn.db"))
    assert runner("ingest", "--force").result["quarantined"] is True  # not trusted before validation
    assert runner("train", "--window-intervals", "2", "--skip-tuning").result["snapshots"] == 1
    validated = runner("validate")
    assert (validated.code, validated.result["quarantined"]) == (0, False)
    assert not (marker / "_QUARANTINED.json").exists()
    assert runner(*train).result["snapshots"] == 2
