"""MlflowHook against a real MLflow server: the tracking URI from a Connection, retries on
transport errors and 5xx only (a fault proxy in front of the server fails requests on demand)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support.fault_proxy import FaultProxy
from support.servers import free_port

from shipyard.hooks.mlflow import MlflowError, MlflowHook


@pytest.fixture
def proxy(mlflow_tracking_uri):
    with FaultProxy(mlflow_tracking_uri) as proxy:
        yield proxy


def fast_hook(conn_id: str = "mlflow_default") -> MlflowHook:
    return MlflowHook(conn_id, attempts=3, backoff=0.05)


@pytest.mark.parametrize(
    ("connection", "uri"),
    [
        ("http://mlflow.shipyard:5000", "http://mlflow.shipyard:5000"),
        ("https://mlflow.example.com/tracking", "https://mlflow.example.com/tracking"),
        (json.dumps({"conn_type": "mlflow", "host": "mlflow", "port": 5000}), "http://mlflow:5000"),
        (
            json.dumps({"conn_type": "mlflow", "host": "https://mlflow.example.com"}),
            "https://mlflow.example.com",
        ),
    ],
)
def test_the_tracking_uri_comes_from_the_connection(monkeypatch, connection, uri):
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEAM_A", connection)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://not-this:5000")
    assert MlflowHook("mlflow_team_a").tracking_uri == uri


def test_without_the_connection_the_steps_tracking_uri_is_used(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000/")
    assert MlflowHook().tracking_uri == "http://mlflow:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(
        MlflowError, match="define the Airflow connection 'mlflow_default' or set MLFLOW_TRACKING_URI"
    ):
        _ = MlflowHook().tracking_uri


def test_get_conn_is_a_client_of_the_connection_server(monkeypatch, mlflow_tracking_uri):
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_tracking_uri)
    client = MlflowHook().get_conn()
    assert client.search_registered_models(max_results=1) is not None
    assert client.tracking_uri == mlflow_tracking_uri


def test_5xx_answers_are_retried_until_the_server_answers(monkeypatch, proxy):
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", proxy.url)
    proxy.fail(first=2, status=503)
    found = fast_hook().run(lambda c: c.search_experiments(max_results=1), "listing experiments")
    assert found is not None
    assert [status for _, _, status in proxy.requests] == [503, 503, 200]


def test_a_dropped_connection_is_retried(monkeypatch, proxy):
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", proxy.url)
    proxy.fail(first=1, status=None)
    fast_hook().run(lambda c: c.search_experiments(max_results=1), "listing experiments")
    assert [status for _, _, status in proxy.requests] == [None, 200]


def test_a_4xx_is_not_retried_and_keeps_mlflows_error_code(monkeypatch, proxy):
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", proxy.url)
    with pytest.raises(MlflowError) as failed:
        fast_hook().run(lambda c: c.get_registered_model("no_such_model"), "reading no_such_model")
    assert failed.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert "reading no_such_model failed: " in str(failed.value)
    assert len(proxy.requests) == 1


def test_an_outage_fails_after_the_last_attempt_naming_the_server(monkeypatch, proxy):
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", proxy.url)
    proxy.fail(first=100, status=503)
    with pytest.raises(
        MlflowError, match=rf"MLflow at {proxy.url}: listing experiments failed after 3 attempts"
    ):
        fast_hook().run(lambda c: c.search_experiments(max_results=1), "listing experiments")
    assert len(proxy.requests) == 3


def test_a_server_that_is_down_fails_after_the_last_attempt(monkeypatch):
    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", down)
    with pytest.raises(MlflowError, match="failed after 3 attempts"):
        fast_hook().run(lambda c: c.search_experiments(max_results=1), "listing experiments")


def test_the_hooks_mlflow_settings_stay_inside_its_calls(monkeypatch, mlflow_tracking_uri):
    """MLflow's retries are off only for the hook's own calls: never written to the process
    environment, where every other MLflow client of the process and every subprocess (a predictor
    the rollout starts, a step) would inherit them."""
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES
    from mlflow.utils import rest_utils

    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_tracking_uri)
    seen = fast_hook().run(lambda c: rest_utils.MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), "reading a setting")
    assert seen == 0

    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ
    inherited = "import os; print(sorted(k for k in os.environ if k.startswith('MLFLOW_HTTP')))"
    child = subprocess.run([sys.executable, "-c", inherited], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "[]"
    # Outside the hook's calls MLflow keeps its own default.
    assert rest_utils.MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == MLFLOW_HTTP_REQUEST_MAX_RETRIES.default


def test_mlflow_retries_set_in_the_environment_are_kept(monkeypatch, proxy):
    """An operator who sets MLflow's own retries gets them, under the hook's attempts."""
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", proxy.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    proxy.fail(first=100, status=503)
    with pytest.raises(MlflowError, match="failed after 3 attempts"):
        fast_hook().run(lambda c: c.search_experiments(max_results=1), "listing experiments")
    assert len(proxy.requests) == 6  # 3 attempts of the hook x (1 request + 1 MLflow retry)
