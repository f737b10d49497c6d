"""Registry faults around canaries on the local backend (real predictors, real splitter, real
MLflow, steady load): the registry side of a promotion cut off after each of its requests
converges on the task's retry, with traffic and aliases agreeing; MLflow stopped mid-analysis
sends the traffic back to stable and fails the task with the cause, and the next rollout
records what the outage left unrecorded."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from mlflow_rest import register_version, registry_state
from rollout_support import RPS
from rollout_task import operator, rollout, run_task, write_spec
from support.fault_proxy import FaultProxy
from support.servers import free_port, mlflow_server, venv_python

from shipyard.rollout.backends.local import LocalBackend
from shipyard.rollout.controller import PROMOTED
from shipyard.rollout.local.load import LoadDriver, load_records
from shipyard.rollout.operator import release_of
from shipyard.rollout.registry import MlflowRegistry
from shipyard_spec import load_spec
from shipyard_spec.contract import RolloutStatus, Tag

pytestmark = pytest.mark.slow


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """The embedded environment; the registry is reached through the Connection `mlflow_default`."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHIPYARD_SERVING_PYTHON", venv_python("serving"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    backends: list[LocalBackend] = []
    yield backends
    for backend in backends:
        backend.stop_all()


def serving(backend: LocalBackend) -> tuple[str, object, list[int]]:
    """(stable version, canary entry, splitter weights)."""
    state = backend.state()
    return state["stable"]["release"]["version"], state["canary"], list(backend.routes().values())


def record_promotion(task) -> AirflowException | None:
    """execute_complete of a promoted canary; the exception that fails the try, if any."""
    try:
        task.execute_complete(context={}, event={"status": PROMOTED, "reason": "passed", "checks": []})
    except AirflowException as e:
        return e
    return None


def test_a_promotion_cut_off_after_any_registry_request_converges_on_the_retry(
    embedded, tmp_path, monkeypatch, model_dir, mlflow_tracking_uri
):
    spec_path = write_spec(tmp_path, pipeline="cut_probe")
    spec = load_spec(spec_path)
    name = spec.mlflow.registered_model
    backend = LocalBackend.for_pipeline(spec.name)
    embedded.append(backend)
    with FaultProxy(mlflow_tracking_uri) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", proxy.url)
        registry = MlflowRegistry.for_spec(spec)
        champion = register_version(mlflow_tracking_uri, name, model_dir)
        run_task(operator(spec_path, champion, model_dir))  # first release: 100 % at once
        load = LoadDriver(
            backend.url, backend.served_name, load_records(model_dir / "input_example.json"), RPS
        ).start()
        try:
            for cut in itertools.count():
                version = register_version(mlflow_tracking_uri, name, model_dir)
                # What execute and the trigger did before the decision: challenger, canary, 100 %.
                registry.start(version)
                registry.set_tag(version, Tag.MODEL_DIR, str(model_dir))
                stable, canary = release_of(spec, registry, champion), release_of(spec, registry, version)
                backend.deploy_canary(stable, canary)
                backend.promote()
                proxy.fail(after=cut)  # MLflow answers 503 after `cut` more requests
                failure = record_promotion(operator(spec_path, version, model_dir))
                proxy.heal()
                if failure is not None:
                    assert type(failure) is AirflowException  # not AirflowFailException: Airflow retries
                    assert f"{name} v{version} serves all traffic but the registry did not record" in str(
                        failure
                    )
                    assert run_task(operator(spec_path, version, model_dir))["status"] == PROMOTED  # retry
                expected = (version, champion, None, RolloutStatus.PROMOTED)
                assert registry_state(registry, version) == expected, f"cut off after {cut} requests"
                assert serving(backend) == (version, None, [100]), f"cut off after {cut} requests"
                champion = version
                if failure is None:
                    break
        finally:
            load.stop()
    assert cut >= 5  # every request of the promotion's registry side was cut off once


def stop_when_the_canary_takes_traffic(backend: LocalBackend, server: contextlib.ExitStack) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if backend.state()["canary"] and min(backend.routes().values()) > 0:
                server.close()  # MLflow stops (SIGTERM) while the canary serves its share
                return
        time.sleep(0.1)


def test_mlflow_stopped_mid_analysis_sends_traffic_back_to_stable_and_fails_with_the_cause(
    embedded, tmp_path, monkeypatch, model_dir
):
    port = free_port()
    store = tmp_path / "mlflow"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", f"http://127.0.0.1:{port}")
    waiting = write_spec(
        tmp_path, pipeline="outage_probe", manual_confirmation=True
    )  # analyses until confirmed
    name = load_spec(waiting).mlflow.registered_model
    backend = LocalBackend.for_pipeline("outage_probe")
    embedded.append(backend)
    records = load_records(model_dir / "input_example.json")
    with contextlib.ExitStack() as server:
        url = server.enter_context(mlflow_server(store, port))
        v1, v2, v3 = (register_version(url, name, model_dir) for _ in range(3))
        rollout(waiting, v1, model_dir)
        with LoadDriver(backend.url, backend.served_name, records, RPS):
            stopper = threading.Thread(target=stop_when_the_canary_takes_traffic, args=(backend, server))
            stopper.start()
            with pytest.raises(AirflowFailException) as failed:
                rollout(waiting, v2, model_dir)
            stopper.join()
        assert f"rolled back {name} v{v2}: registry unreachable during analysis: MLflow at" in str(
            failed.value
        )
        assert "the registry did not record it" in str(failed.value)
        assert serving(backend) == (v1, None, [100])  # traffic first: all on stable

    later = write_spec(
        tmp_path / "later" if (tmp_path / "later").mkdir() is None else tmp_path, "outage_probe"
    )
    with mlflow_server(store, port), LoadDriver(backend.url, backend.served_name, records, RPS):
        assert rollout(later, v3, model_dir)["status"] == PROMOTED
        registry = MlflowRegistry.for_spec(load_spec(later))
        assert registry_state(registry, v2) == (v3, v1, None, RolloutStatus.ROLLED_BACK)
        assert "rollout interrupted before its decision was recorded" in registry.tags(v2)[Tag.ROLLOUT_REASON]
