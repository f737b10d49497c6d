"""MlflowHook: an `mlflow.MlflowClient` bound to an Airflow Connection, with retries.

Connection (default `mlflow_default`, conn type `mlflow`; any HTTP(S) connection URI works,
e.g. `AIRFLOW_CONN_MLFLOW_DEFAULT=http://mlflow:5000`): host (with or without scheme), port
and schema (a path prefix) form the tracking URI. Without such a connection the hook uses
`MLFLOW_TRACKING_URI`, the variable the pipeline steps read, so one setting serves both
sides in the embedded runtime and the chart. Credentials come from MLflow's own environment
variables (`MLFLOW_TRACKING_USERNAME`/`_PASSWORD`/`_TOKEN`), as for the steps.

`run()` retries an operation on transport errors (refused, reset, timed out) and 5xx answers
only, with exponential backoff (tenacity); a 4xx (bad request, not found) fails at once.
MLflow's own per-request retries are turned off (`MLFLOW_HTTP_REQUEST_MAX_RETRIES=0`) and
its timeout shortened (10 s) unless the environment sets them, so that one layer, this one,
decides how long an outage is waited out. After the last attempt `MlflowError` carries what
was being done, the tracking URI, MLflow's error code and the cause.

mlflow (and requests) are imported inside methods only: the DAG processor imports the
operators that hold this hook, and must not pay for mlflow while parsing DAG files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_attempt, wait_exponential

from shipyard_spec.contract import Env

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

T = TypeVar("T")

# MLflow's own retry layer off, and a timeout short enough for a canary's gate: see the docstring.
MLFLOW_CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


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
        for name, value in MLFLOW_CLIENT_DEFAULTS.items():
            os.environ.setdefault(name, value)
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
            return retrying(operation, client)
        except MlflowException as e:
            tries = f" after {self.attempts} attempts" if is_transient(e) else ""
            message = f"MLflow at {self.tracking_uri}: {what} failed{tries}: {e}"
            raise MlflowError(message, e.error_code) from e
