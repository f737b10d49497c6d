"""MlflowHook: an `mlflow.MlflowClient` bound to an Airflow Connection, with retries.

Connection (default `mlflow_default`, conn type `mlflow`; any HTTP(S) connection URI works,
e.g. `AIRFLOW_CONN_MLFLOW_DEFAULT=http://mlflow:5000`): host (with or without scheme), port
and schema (a path prefix) form the tracking URI. Without such a connection the hook uses
`MLFLOW_TRACKING_URI`, the variable the pipeline steps read, so one setting serves both
sides in the embedded runtime and the chart. Credentials come from MLflow's own environment
variables (`MLFLOW_TRACKING_USERNAME`/`_PASSWORD`/`_TOKEN`), as for the steps.

`run()` retries an operation on transport errors (refused, reset, timed out) and 5xx answers
only, with exponential backoff (tenacity); a 4xx (bad request, not found) fails at once.
During `run()`, and only there, MLflow's own per-request retries are off
(`MLFLOW_HTTP_REQUEST_MAX_RETRIES=0`) and its timeout is 10 s, unless the environment sets
them, so that one layer, this one, decides how long an outage is waited out. MLflow reads both
settings from the environment on every request and has no per-client setting, so the hook
never writes them to `os.environ` (every other MLflow user of the process, and every
subprocess, would inherit them): it wraps MLflow's two settings once so that a value held in a
context variable — this thread or asyncio task, for the call — comes first
(`scoped_mlflow_settings`). After the last attempt `MlflowError` carries what was being done,
the tracking URI, MLflow's error code and the cause.

mlflow (and requests) are imported inside methods only: the DAG processor imports the
operators that hold this hook, and must not pay for mlflow while parsing DAG files.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_attempt, wait_exponential

from shipyard_spec.contract import Env

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

T = TypeVar("T")

# MLflow's own retry layer off, and a timeout short enough for a canary's gate, during the hook's
# calls only: see the docstring.
MLFLOW_CALL_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}

_call_settings: ContextVar[Mapping[str, str] | None] = ContextVar(
    "shipyard_mlflow_call_settings", default=None
)


class _ScopedSetting:
    """One of MLflow's environment settings, read as MLflow reads it (`.get()`), except that a
    value of the current `scoped_mlflow_settings()` block comes first when the environment does
    not set the variable itself."""

    def __init__(self, setting: Any) -> None:
        self._setting = setting

    def get(self) -> Any:
        scoped = (_call_settings.get() or {}).get(self._setting.name)
        if scoped is None or self._setting.defined:
            return self._setting.get()
        return self._setting.type(scoped)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._setting, name)

    def __str__(self) -> str:  # MLflow names the variable in its timeout message
        return str(self._setting)


@contextlib.contextmanager
def scoped_mlflow_settings(settings: Mapping[str, str]) -> Iterator[None]:
    """MLflow's HTTP `settings` (variable name → value) for the requests made inside the block,
    in this thread or asyncio task only; the process environment is left alone."""
    from mlflow.utils import rest_utils  # where every MLflow REST request reads its settings

    for name in settings:
        setting = getattr(rest_utils, name)  # AttributeError: MLflow moved it, fail loudly
        if not isinstance(setting, _ScopedSetting):
            setattr(rest_utils, name, _ScopedSetting(setting))
    token = _call_settings.set(settings)
    try:
        yield
    finally:
        _call_settings.reset(token)


class MlflowError(RuntimeError):
    """An MLflow call failed for good (after retries when the failure was transient)."""

    def __init__(self, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


def is_transient(error: BaseException) -> bool:
    """Worth another attempt: a transport failure or a 5xx answer; never a 4xx.

    With MLflow's retries off, a refused connection, a timeout and a 5xx answer all surface as
    an MlflowException chained to a `requests` transport error (urllib3 turns a 5xx into
    RetryError); a non-retryable 5xx is a RestException with that status.
    """
    import requests
    from mlflow.exceptions import RestException

    if isinstance(error, RestException):
        return error.get_http_status_code() >= 500
    transport = (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.RetryError,
        requests.exceptions.ChunkedEncodingError,
    )
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, transport):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class MlflowHook(BaseHook):
    """An MlflowClient for the tracking server of an Airflow Connection.

    :param mlflow_conn_id: the Connection; when it does not exist, `MLFLOW_TRACKING_URI`.
    :param attempts: tries per operation (transport errors and 5xx only).
    :param backoff: first wait between tries, seconds; doubles each time up to `max_backoff`.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(
        self,
        mlflow_conn_id: str = default_conn_name,
        *,
        attempts: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 8.0,
    ) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff

    @cached_property
    def tracking_uri(self) -> str:
        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            uri = os.environ.get(Env.MLFLOW_TRACKING_URI)
            if not uri:
                raise MlflowError(
                    f"no MLflow server: define the Airflow connection {self.mlflow_conn_id!r} "
                    f"or set {Env.MLFLOW_TRACKING_URI}"
                ) from None
            log.info("connection %r not defined: %s=%s", self.mlflow_conn_id, Env.MLFLOW_TRACKING_URI, uri)
            return uri.rstrip("/")
        host = conn.host or ""
        if not host:
            raise MlflowError(f"connection {self.mlflow_conn_id!r} has no host")
        if "://" not in host:
            host = f"{'https' if conn.conn_type == 'https' else 'http'}://{host}"
        port = f":{conn.port}" if conn.port else ""
        path = f"/{conn.schema.strip('/')}" if conn.schema else ""
        return f"{host.rstrip('/')}{port}{path}"

    def get_conn(self) -> MlflowClient:
        return self._client

    @cached_property
    def _client(self) -> MlflowClient:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def run(self, operation: Callable[[MlflowClient], T], what: str) -> T:
        """`operation(client)`, retried on transport errors and 5xx; MlflowError naming `what` otherwise."""
        from mlflow.exceptions import MlflowException

        client = self.get_conn()
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=self.max_backoff),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )
        try:
            with scoped_mlflow_settings(MLFLOW_CALL_SETTINGS):
                return retrying(operation, client)
        except MlflowException as e:
            tries = f" after {self.attempts} attempts" if is_transient(e) else ""
            message = f"MLflow at {self.tracking_uri}: {what} failed{tries}: {e}"
            raise MlflowError(message, e.error_code) from e
