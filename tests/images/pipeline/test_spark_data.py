"""The Spark engine's data path, against pandas: ingest's partitioned JDBC read publishes the pandas
snapshot, with the same checks; the training window read and split by Spark is the pandas one.

In process, `local[2]`: each Spark ingest starts one session (the JVM stays up between them).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from awkward_source import write_awkward_source

from shipyard_pipeline import dataset, demo, snapshot, spark_engine, spark_source
from shipyard_pipeline.errors import StepError
from shipyard_pipeline.source import DRIVERS
from shipyard_pipeline.spark_window import SparkWindow
from shipyard_pipeline.training_window import PARTS, PandasWindow
from shipyard_spec import load_spec
from shipyard_spec.contract import Env, ExitCode

pytestmark = [pytest.mark.spark, pytest.mark.usefixtures("shipyard_home")]

ON_SPARK = {"engine": "spark", "model": {"tuning": {"enabled": False}}}
CHUNK_ROWS = 41


@pytest.fixture(autouse=True)
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(Env.SPARK_MASTER, "local[2]")


@pytest.fixture(scope="module")
def awkward_source(tmp_path_factory: pytest.TempPathFactory, shipyard_home: Path, last_week) -> Path:
    """The demo table stored out of time order, with NULLs in an integer and a text column in the
    first rows of the week: partitions that see an integer column only NULL, then only integers."""
    database = tmp_path_factory.mktemp("awkward") / "awkward.db"
    write_awkward_source(f"sqlite:///{database}", shipyard_home, last_week[0])
    return database


def test_spark_ingest_publishes_the_snapshot_pandas_ingest_publishes(
    make_runner, spec_variant, awkward_source, caplog
) -> None:
    caplog.set_level(logging.INFO, logger=spark_source.__name__)
    source = {"url": f"sqlite:///{awkward_source}", "chunk_rows": CHUNK_ROWS}
    published = {}
    for engine in ("pandas", "spark"):
        runner = make_runner(
            spec_variant(**ON_SPARK, source=source) if engine == "spark" else spec_variant(source=source)
        )
        runner.storage_root = runner.storage_root.with_name(f"storage-{engine}")
        outcome = runner("ingest")
        assert outcome.code == 0, outcome.stderr
        published[engine] = (runner, outcome)
    pandas, spark = (published[e][1].result for e in ("pandas", "spark"))
    assert spark["content_hash"] == pandas["content_hash"]
    assert spark["schema_fingerprint"] == pandas["schema_fingerprint"]
    assert spark["rows"] == pandas["rows"] > 200
    frames = {
        e: snapshot.read_published(r["snapshot_uri"]).read()
        for e, r in (("pandas", pandas), ("spark", spark))
    }
    pd.testing.assert_frame_equal(frames["spark"], frames["pandas"])
    assert frames["spark"]["senior_citizen"].dtype == "float64"  # NULLs in an integer column, as pandas
    manifests = {
        e: json.loads((Path(r["snapshot_uri"]) / snapshot.MANIFEST_FILE).read_text())
        for e, r in (("pandas", pandas), ("spark", spark))
    }
    assert manifests["spark"]["columns"] == manifests["pandas"]["columns"]
    # Partitions of about chunk_rows rows, each one range of event time.
    partitions = -(-spark["rows"] // CHUNK_ROWS)
    assert f"on Spark: {partitions} partition(s) by event_time" in caplog.text

    runner = published["spark"][0]
    again, forced = runner("ingest"), runner("ingest", "--force")
    assert (again.result["skipped"], forced.result["skipped"]) == (True, False)
    assert again.result["content_hash"] == forced.result["content_hash"] == pandas["content_hash"]


def test_spark_ingest_reads_a_query_source(make_runner, spec_variant) -> None:
    query = {"table": None, "query": f"SELECT * FROM {demo.TABLE} WHERE tenure >= 0"}
    on_pandas, on_spark = make_runner(), make_runner(spec_variant(**ON_SPARK, source=query))
    on_spark.storage_root = on_spark.storage_root.with_name("storage-spark")
    pandas, spark = on_pandas("ingest"), on_spark("ingest")
    assert spark.code == 0, spark.stderr
    assert spark.result["content_hash"] == pandas.result["content_hash"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"features": {"numeric": ["tenure", "loyalty_points"]}}, "features.numeric[1]", "schema drift"),
        ({"columns": {"event_time": "created_at"}}, "columns.event_time", "schema drift"),
        ({"columns": {"positive_label": "yes"}}, "columns.positive_label", "differs only in case from 'Yes'"),
    ],
)
def test_spark_ingest_makes_the_checks_of_pandas_ingest(
    make_runner, spec_variant, change, field, message
) -> None:
    outcome = make_runner(spec_variant(**ON_SPARK, **change))("ingest")
    assert outcome.code == ExitCode.CHECK_FAILED, outcome.stderr
    assert message in outcome.stderr
    assert field in outcome.stderr  # the spec field, not only the column
    assert outcome.result is None


def _publish(root: Path, frame: pd.DataFrame, start: datetime, end: datetime) -> None:
    rows = frame[(frame["event_time"] >= start) & (frame["event_time"] < end)].reset_index(drop=True)
    directory = root / f"interval_start={start:%Y-%m-%dT%H:%M:%S}"
    snapshot.publish(
        str(directory),
        rows,
        {"interval_start": start.isoformat(), "interval_end": end.isoformat(), "rows": len(rows)},
    )


@pytest.fixture(scope="module")
def overlapping_snapshots(tmp_path_factory: pytest.TempPathFactory, shipyard_home: Path, last_week):
    """Three weeks as a two-week bootstrap snapshot, a weekly one re-ingesting its second week
    (with other monthly charges: the later copy must win) and the week after."""
    source = sa.create_engine(f"sqlite:///{shipyard_home / demo.DATABASE}")
    frame = pd.read_sql_table(demo.TABLE, source)
    source.dispose()
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    week = timedelta(weeks=1)
    end = last_week[1]
    root = tmp_path_factory.mktemp("window") / "snapshots"
    _publish(root, frame, end - 3 * week, end - week)
    _publish(root, frame.assign(monthly_charges=frame["monthly_charges"] + 1), end - 2 * week, end - week)
    _publish(root, frame, end - week, end)
    return dataset.window_snapshots(str(root), end - week, end, 3)


@pytest.mark.parametrize("policy", ["time", "random"])
def test_the_window_spark_reads_and_splits_is_the_pandas_window(
    overlapping_snapshots, telco_spec, tmp_path, last_week, policy
) -> None:
    spec = load_spec(telco_spec)
    if policy == "random":  # applied without event times
        spec = spec.model_copy(update={"columns": spec.columns.model_copy(update={"event_time": None})})
    assert dataset.applied_split_policy(spec) == policy
    pandas = PandasWindow(spec, overlapping_snapshots)
    with spark_engine.session("test-window") as spark:
        spark_window = SparkWindow(spark, spec, overlapping_snapshots, str(tmp_path / "scratch"))
        assert spark_window.features == pandas.features
        assert spark_window.rows == pandas.rows
        written = {}
        for name, window in (("pandas", pandas), ("spark", spark_window)):
            written[name] = {part: str(tmp_path / name / f"{part}.parquet") for part in PARTS}
            window.write_split(written[name])
        pd.testing.assert_frame_equal(spark_window.part("test"), pandas.part("test").reset_index(drop=True))
        pd.testing.assert_frame_equal(
            spark_window.sample("train"), pandas.sample("train").reset_index(drop=True)
        )
    for part in PARTS:  # row for row, with the snapshots' dtypes
        pd.testing.assert_frame_equal(
            pd.read_parquet(written["spark"][part]), pd.read_parquet(written["pandas"][part])
        )
    # Deduplicated: the re-ingested week counts once, with the later snapshot's values.
    assert sum(pandas.rows.values()) == sum(
        s.manifest["rows"] for s in overlapping_snapshots[:1] + overlapping_snapshots[2:]
    )
    second_week = pd.concat(pd.read_parquet(written["spark"][part]) for part in PARTS)
    second_week = second_week[
        (second_week["event_time"] >= last_week[0] - timedelta(weeks=1))
        & (second_week["event_time"] < last_week[0])
    ]
    replaced = overlapping_snapshots[1].read().set_index("customer_id")["monthly_charges"]
    pd.testing.assert_series_equal(
        second_week.set_index("customer_id")["monthly_charges"].sort_index(), replaced.sort_index()
    )


def test_a_source_url_becomes_a_jdbc_url_without_its_credentials() -> None:
    sqlite = spark_source.jdbc_source(sa.make_url("sqlite:////data/telco.db"))
    assert (sqlite.url, sqlite.properties) == ("jdbc:sqlite:/data/telco.db", {"driver": "org.sqlite.JDBC"})
    postgres = spark_source.jdbc_source(
        sa.make_url("postgresql+psycopg://etl:s3cret@db.internal:6543/warehouse?sslmode=require")
    )
    assert postgres.url == "jdbc:postgresql://db.internal:6543/warehouse"
    assert postgres.properties == {
        "driver": "org.postgresql.Driver", "sslmode": "require", "user": "etl", "password": "s3cret"
    }  # fmt: skip
    assert "s3cret" not in repr(postgres)  # what a log line could show
    # Given twice, the query's password is the one libpq (the pandas read) sends.
    twice = spark_source.jdbc_source(sa.make_url("postgresql://etl:old@db.internal/warehouse?password=new"))
    assert twice.url == "jdbc:postgresql://db.internal:5432/warehouse"
    assert twice.properties["password"] == "new"
    assert set(spark_source.JDBC_SOURCES) == set(DRIVERS)  # every URL the pandas read takes


@pytest.mark.parametrize(
    "url", ["postgresql://etl:s3cret@/warehouse", "postgresql://etl:s3cret@/warehouse?host=/run/postgresql"]
)
def test_spark_refuses_a_postgresql_url_without_a_tcp_address(url) -> None:
    # libpq would read it from a unix socket on the driver; JDBC has none, and executors are elsewhere.
    with pytest.raises(StepError, match=r"over TCP .* not postgresql://etl:\*\*\*@/warehouse") as raised:
        spark_source.jdbc_source(sa.make_url(url))
    assert "s3cret" not in str(raised.value)


def test_the_interval_is_cut_into_adjoining_event_time_ranges() -> None:
    start = datetime(2026, 11, 23, tzinfo=UTC)
    ranges = spark_source.sub_ranges(start, start + timedelta(weeks=1), 3)
    assert [a for a, _ in ranges[1:]] == [b for _, b in ranges[:-1]]  # no gap, no overlap
    assert (ranges[0][0], ranges[-1][1]) == (start, start + timedelta(weeks=1))
    assert spark_source.partitions(rows=1000, chunk_rows=41, parallelism=2) == 25
    assert spark_source.partitions(rows=10, chunk_rows=41, parallelism=2) == 2
