"""A PostgreSQL source, read by ingest on both engines from a real server (Debian's `postgresql`,
`make postgresql`): the snapshot of the same rows read from SQLite, and no credentials in any output.

The source URL is `${WAREHOUSE_URL}`, expanded from the step's environment, as a step pod gets it
from a Secret (chart value `pipeline.envFromSecrets`). Spark runs in process, `local[2]`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from awkward_source import write_awkward_source
from pyspark.errors import PySparkException
from support.servers import postgres_server
from support.specs import spark_pipeline

from shipyard_pipeline import snapshot, spark_engine, spark_source, spark_storage
from shipyard_pipeline.source import URL_FORMS
from shipyard_spec.contract import Env, ExitCode

pytestmark = [pytest.mark.spark, pytest.mark.usefixtures("shipyard_home")]

URL_VARIABLE = "WAREHOUSE_URL"
CHUNK_ROWS = 41
ENGINES = ("pandas", "spark")


@pytest.fixture(scope="module")
def warehouse(
    tmp_path_factory: pytest.TempPathFactory, shipyard_home: Path, last_week
) -> Iterator[tuple[sa.URL, str]]:
    """A PostgreSQL database (its URL) and a SQLite file (its URL), each holding the awkward demo
    table: stored out of time order, NULLs in an integer and a text column."""
    sqlite = f"sqlite:///{tmp_path_factory.mktemp('awkward') / 'awkward.db'}"
    write_awkward_source(sqlite, shipyard_home, last_week[0])
    with postgres_server() as url:
        write_awkward_source(url, shipyard_home, last_week[0])
        yield sa.make_url(url), sqlite


@pytest.fixture(autouse=True)
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(Env.SPARK_MASTER, "local[2]")


@pytest.fixture(autouse=True)
def step_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # the step's log as `shipyard-step` prints it


@pytest.fixture
def spec_on(spec_variant, tmp_path: Path):
    """The Telco spec on `engine` reading `url`, `chunk_rows` small enough for several chunks/partitions."""

    def write(engine: str, url: str) -> Path:
        base = spark_pipeline(tmp_path) if engine == "spark" else spec_variant()
        return spec_variant(base, source={"url": url, "chunk_rows": CHUNK_ROWS})

    return write


def _output(outcome, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture) -> str:
    """Everything a step's log could show: its stderr, its Python log records, the JVM's output."""
    captured = capfd.readouterr()
    return "\n".join((outcome.stderr, caplog.text, captured.out, captured.err))


def test_both_engines_ingest_from_postgresql_the_snapshot_of_the_same_rows_in_sqlite(
    make_runner, spec_on, warehouse, monkeypatch, caplog, capfd
) -> None:
    postgres, sqlite = warehouse
    monkeypatch.setenv(URL_VARIABLE, postgres.render_as_string(hide_password=False))
    published, logs = {}, {}
    address = f"{postgres.host}:{postgres.port}/{postgres.database}"
    for name, engine, url in (
        ("sqlite", "pandas", sqlite),
        *((f"postgresql on {engine}", engine, f"${{{URL_VARIABLE}}}") for engine in ENGINES),
    ):
        runner = make_runner(spec_on(engine, url))
        runner.storage_root = runner.storage_root.with_name(f"storage-{engine}-{name.split()[0]}")
        outcome = runner("ingest")
        assert outcome.code == 0, outcome.stderr
        output = _output(outcome, caplog, capfd)
        assert f"published {outcome.result['snapshot_uri']}" in output  # the step's log is in it
        assert postgres.password not in output
        published[name], logs[name] = outcome.result, output

    expected = published.pop("sqlite")
    assert expected["rows"] > 3 * CHUNK_ROWS
    for name, result in published.items():
        assert (result["content_hash"], result["schema_fingerprint"], result["rows"]) == (
            expected["content_hash"], expected["schema_fingerprint"], expected["rows"],
        ), name  # fmt: skip
        frame = snapshot.read_published(result["snapshot_uri"]).read()
        assert frame["senior_citizen"].dtype == "float64"  # NULLs in an integer column, as from SQLite
        assert frame["payment_method"].isna().sum() == frame["senior_citizen"].isna().sum() > 0
        manifest = json.loads((Path(result["snapshot_uri"]) / snapshot.MANIFEST_FILE).read_text())
        assert manifest["source"] == f"postgresql://{postgres.username}:***@{address} table=customers"
    assert f"of jdbc:postgresql://{address} on Spark" in logs["postgresql on spark"]  # Spark read it


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("form", ["in the authority", "as a query parameter"])
def test_a_wrong_password_fails_naming_the_source_and_the_cause_but_not_the_password(
    engine, form, make_runner, spec_on, warehouse, monkeypatch, caplog, capfd
) -> None:
    postgres, _ = warehouse
    wrong = "not-the-" + postgres.password
    url = (
        postgres.set(password=wrong)
        if form == "in the authority"
        else sa.URL.create(
            postgres.drivername,
            postgres.username,
            None,
            postgres.host,
            postgres.port,
            postgres.database,
            query={"password": wrong},
        )
    )
    monkeypatch.setenv(URL_VARIABLE, url.render_as_string(hide_password=False))
    outcome = make_runner(spec_on(engine, f"${{{URL_VARIABLE}}}"))("ingest")
    assert outcome.code == ExitCode.ERROR, outcome.stderr
    assert outcome.result is None
    cause = outcome.stderr.strip().splitlines()[-1]
    shown = "***" if form == "in the authority" else ""
    assert cause.startswith(
        f"shipyard-step ingest: reading postgresql://{postgres.username}{shown and ':'}{shown}@"
        f"{postgres.host}:{postgres.port}/{postgres.database} failed: "
    ), cause
    assert f'password authentication failed for user "{postgres.username}"' in cause
    assert wrong not in _output(outcome, caplog, capfd)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_url_of_a_driver_the_image_lacks_is_refused_on_both_engines(
    engine, make_runner, spec_on, monkeypatch, caplog, capfd
) -> None:
    monkeypatch.setenv(URL_VARIABLE, "postgresql+psycopg2://etl:s3cret@127.0.0.1:1/warehouse")
    outcome = make_runner(spec_on(engine, f"${{{URL_VARIABLE}}}"))("ingest")
    assert outcome.code == ExitCode.ERROR, outcome.stderr
    assert outcome.stderr.strip().splitlines()[-1] == (
        "shipyard-step ingest: source.url postgresql+psycopg2://etl:***@127.0.0.1:1/warehouse: no driver "
        f"for postgresql+psycopg2 in the pipeline image; the forms read: {URL_FORMS}"
    )
    assert "s3cret" not in _output(outcome, caplog, capfd)


def test_a_query_jdbc_cannot_run_fails_on_spark_with_the_database_driver_s_answer(
    make_runner, spec_on, spec_variant, warehouse, monkeypatch
) -> None:
    # pgjdbc takes `?` (PostgreSQL's jsonb operator) for a parameter; psycopg, on the driver, does not.
    postgres, _ = warehouse
    monkeypatch.setenv(URL_VARIABLE, postgres.render_as_string(hide_password=False))
    query = {"table": None, "query": """SELECT * FROM customers WHERE '{"a": 1}'::jsonb ? 'a'"""}
    spec = spec_variant(spec_on("spark", f"${{{URL_VARIABLE}}}"), source=query)
    outcome = make_runner(spec)("ingest")
    assert outcome.code == ExitCode.ERROR, outcome.stderr
    cause = outcome.stderr.strip().splitlines()[-1]
    assert "on Spark failed: An error occurred while calling" in cause
    assert cause.endswith("(org.postgresql.util.PSQLException: No value specified for parameter 1.)"), cause


def test_a_login_jdbc_is_refused_is_named_with_the_database_s_answer(warehouse) -> None:
    # Spark's own message for it is "Couldn't connect to the database" (e.g. executors refused by
    # pg_hba.conf while the driver was let in).
    postgres, _ = warehouse
    jdbc = spark_source.jdbc_source(postgres.set(password="not-the-" + postgres.password))
    with spark_engine.session("test-jdbc-login") as spark, pytest.raises(PySparkException) as raised:
        spark.read.jdbc(jdbc.url, "customers", properties=jdbc.properties).schema  # noqa: B018
    cause = spark_storage.spark_cause(raised.value)
    assert "Couldn't connect to the database" in cause
    assert f'password authentication failed for user "{postgres.username}"' in cause
