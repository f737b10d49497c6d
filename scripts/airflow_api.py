"""The Airflow REST API (v2) of a running API server, as `make demo` and the UI tests use it.

Signs in once as a user of the simple auth manager (POST /auth/token) and sends the bearer token
with every call. Reads (GET) are retried when the server does not answer in time: on a busy
2-core machine the API server sometimes takes longer than a request's timeout. Any request the
server refused with 503 (a SQLite lock on the embedded metadata database) is sent again.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

REQUEST_TIMEOUT = 60  # seconds


def busy(error: BaseException) -> bool:
    """503: the API server's answer to a SQLite lock (another component was writing), "try again";
    Airflow rolls back what the refused request began (a backfill without runs is deleted)."""
    return isinstance(error, urllib.error.HTTPError) and error.code == 503


def unanswered(error: BaseException) -> bool:
    """No answer in time, or no connection; an HTTP error status is an answer (never retried)."""
    if isinstance(error, urllib.error.HTTPError):
        return False
    return isinstance(error, TimeoutError | ConnectionError | urllib.error.URLError)


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


FINISHED = frozenset({RunState.SUCCESS, RunState.FAILED})


@dataclass
class AirflowApi:
    url: str
    user: str
    password: str
    _token: str | None = field(default=None, repr=False)

    def _request(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
            method=method,
        )
        # Reads are safe to repeat; a write only when the server refused it as a whole (busy).
        for attempt in Retrying(
            stop=stop_after_attempt(5),
            wait=wait_exponential(min=1, max=10),
            retry=retry_if_exception(lambda e: busy(e) or (method == "GET" and unanswered(e))),
            reraise=True,
        ):
            with attempt, urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
                payload = response.read()
        return json.loads(payload) if payload else None

    def token(self) -> str:
        if self._token is None:
            answer = self._request(
                "POST", "/auth/token", {"username": self.user, "password": self.password}, auth=False
            )
            self._token = answer["access_token"]
        return self._token

    def dag_runs(self, dag_id: str, **query: str) -> list[dict[str, Any]]:
        """The DAG's runs, oldest first (`query`: the endpoint's filters, e.g. run_type=...)."""
        params = urllib.parse.urlencode({"order_by": "id", "limit": "100", **query})
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns?{params}")["dag_runs"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Each task of the run and its state (None: not started)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances"
        return {ti["task_id"]: ti["state"] for ti in self._request("GET", path)["task_instances"]}

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """One task instance of a run, its rendered fields included."""
        run = urllib.parse.quote(run_id, safe="")
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run}/taskInstances/{task_id}")

    def create_backfill(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /api/v2/backfills` (what the UI's Backfill dialog sends); the backfill created."""
        return self._request("POST", "/api/v2/backfills", body)

    def delete_dag_run(self, dag_id: str, run_id: str) -> None:
        self._request("DELETE", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def wait_runs(
        self, dag_id: str, count: int, timeout: float, poll: float = 2, **query: str
    ) -> list[dict[str, Any]]:
        """The first `count` runs matching `query` once each has finished; TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.dag_runs(dag_id, **query)[:count]
            if len(runs) == count and all(run["state"] in FINISHED for run in runs):
                return runs
            if time.monotonic() > deadline:
                states = [(run["dag_run_id"], run["state"]) for run in runs]
                raise TimeoutError(f"{dag_id}: {count} runs not finished after {timeout:.0f} s: {states}")
            time.sleep(poll)
