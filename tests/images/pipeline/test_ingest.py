"""ingest: one interval into an immutable, manifest-published snapshot; clear failures."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from awkward_source import write_awkward_source

from shipyard_pipeline import demo, snapshot
from shipyard_spec.contract import ExitCode

pytestmark = pytest.mark.usefixtures("shipyard_home")


def test_ingest_writes_the_interval_rows_and_a_manifest(make_runner) -> None:
    runner = make_runner()
    outcome = runner("ingest")
    assert outcome.code == 0, outcome.stderr
    result = outcome.result
    manifest = json.loads((Path(result["snapshot_uri"]) / "_MANIFEST.json").read_text())
    frame = pd.read_parquet(result["data_uri"])
    assert result["rows"] == manifest["rows"] == len(frame) > 200
    assert frame["event_time"].min() >= pd.Timestamp(runner.start)
    assert frame["event_time"].max() < pd.Timestamp(runner.end)
    assert manifest["content_hash"] == snapshot.content_hash(frame)
    assert Path(result["snapshot_uri"]).name == f"interval_start={runner.start:%Y-%m-%dT%H:%M:%S}"


def test_ingest_is_idempotent_and_force_reproduces_the_same_partition(make_runner) -> None:
    runner = make_runner()
    first = runner("ingest").result
    again = runner("ingest").result
    forced = runner("ingest", "--force").result
    assert (first["skipped"], again["skipped"], forced["skipped"]) == (False, True, False)
    assert first["content_hash"] == again["content_hash"] == forced["content_hash"]
    assert first["snapshot_uri"] == forced["snapshot_uri"]


def test_missing_table_fails_naming_the_table(make_runner, spec_variant) -> None:
    spec = spec_variant(source={"table": "no_such_table"})
    outcome = make_runner(spec)("ingest")
    assert outcome.code == ExitCode.ERROR
    assert "table 'no_such_table' does not exist" in outcome.stderr


def test_empty_interval_fails_as_a_check_and_publishes_nothing(make_runner, last_week) -> None:
    start = last_week[1] + timedelta(weeks=4)  # a future week: no rows yet
    runner = make_runner(start=start, end=start + timedelta(weeks=1))
    outcome = runner("ingest")
    assert outcome.code == ExitCode.CHECK_FAILED
    assert "empty interval" in outcome.stderr
    assert snapshot.list_published(str(runner.storage_root / "telco_churn" / "snapshots")) == []


@pytest.mark.parametrize(
    ("section", "change", "field", "missing"),
    [
        ("features", {"numeric": ["tenure", "loyalty_points"]}, "features.numeric[1]", "loyalty_points"),
        ("columns", {"target": "churned"}, "columns.target", "churned"),
        ("columns", {"event_time": "created_at"}, "columns.event_time", "created_at"),
    ],
)
def test_source_without_a_spec_column_is_schema_drift(
    make_runner, spec_variant, section, change, field, missing
) -> None:
    outcome = make_runner(spec_variant(**{section: change}))("ingest")
    assert outcome.code == ExitCode.CHECK_FAILED
    assert "schema drift" in outcome.stderr
    assert f"{field} = {missing!r}" in outcome.stderr  # the spec field, not only the column


@pytest.mark.parametrize(
    ("label", "problem"),
    [("yes", "differs only in case from 'Yes'"), ("Churned", "matches none of them")],
)
def test_a_positive_label_the_data_never_has_fails_at_ingest_naming_the_field(
    make_runner, spec_variant, label, problem
) -> None:
    outcome = make_runner(spec_variant(columns={"positive_label": label}))("ingest")
    assert outcome.code == ExitCode.CHECK_FAILED
    assert f"columns.positive_label {label!r} {problem}" in outcome.stderr
    assert "['No', 'Yes']" in outcome.stderr  # the values found


def test_a_partition_without_manifest_is_not_published(tmp_path: Path) -> None:
    unfinished = tmp_path / "snapshots" / "interval_start=2026-01-05T00:00:00"
    unfinished.mkdir(parents=True)
    pd.DataFrame({"a": [1]}).to_parquet(unfinished / snapshot.DATA_FILE)
    assert snapshot.read_published(str(unfinished)) is None
    assert snapshot.list_published(str(tmp_path / "snapshots")) == []


def test_unset_environment_variable_in_the_source_url_is_named(make_runner, monkeypatch) -> None:
    monkeypatch.delenv("SHIPYARD_HOME")
    outcome = make_runner()("ingest")
    assert outcome.code == ExitCode.ERROR
    assert "SHIPYARD_HOME" in outcome.stderr


def _whole_interval(database: Path, start, end) -> pd.DataFrame:
    """The snapshot rows as an unchunked ingest made them: one `read_sql_query`, then a stable sort."""
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        frame = pd.read_sql_query(
            sa.text("SELECT * FROM customers WHERE event_time >= :start AND event_time < :end"),
            connection,
            params={"start": start.replace(tzinfo=None), "end": end.replace(tzinfo=None)},
        )
    engine.dispose()
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    return frame.sort_values(["event_time", "customer_id"], kind="stable", ignore_index=True)


def test_a_chunked_ingest_publishes_the_snapshot_of_an_unchunked_read(
    make_runner, spec_variant, shipyard_home, tmp_path, last_week
) -> None:
    # A copy of the demo table in which the first rows of the week have NULL in an integer and a
    # text column, and the table is stored out of time order: chunks of 41 rows see the integer
    # column as all-NULL objects, then as int64, and must still give the one float64 column (and
    # the content hash) of a read in one piece.
    database = tmp_path / "nulls.db"
    write_awkward_source(f"sqlite:///{database}", shipyard_home, last_week[0])

    spec = spec_variant(source={"url": f"sqlite:///{database}", "chunk_rows": 41})
    outcome = make_runner(spec)("ingest")
    assert outcome.code == 0, outcome.stderr

    expected = _whole_interval(database, *last_week)
    assert expected["senior_citizen"].dtype == "float64"  # the case this test is about
    published = snapshot.read_published(outcome.result["snapshot_uri"])
    pd.testing.assert_frame_equal(published.read(), expected)
    assert published.manifest["rows"] == len(expected) > 41 * 3
    assert published.manifest["content_hash"] == snapshot.content_hash(expected)
    assert published.manifest["schema_fingerprint"] == snapshot.schema_fingerprint(expected)


def test_a_query_source_publishes_the_snapshot_of_its_table(make_runner, spec_variant) -> None:
    """A `source.query` is read as a subquery filtered by event time (it raised a TypeError before
    any row was read: `text().subquery()` takes no name)."""
    query = spec_variant(source={"table": None, "query": f"SELECT * FROM {demo.TABLE} WHERE tenure >= 0"})
    from_table, from_query = make_runner(), make_runner(query)
    from_query.storage_root = from_query.storage_root.with_name("storage-query")
    table_result, query_result = from_table("ingest"), from_query("ingest")
    assert query_result.code == 0, query_result.stderr
    assert query_result.result["content_hash"] == table_result.result["content_hash"]
