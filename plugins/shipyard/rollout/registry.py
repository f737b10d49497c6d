"""The MLflow registry over its REST API: aliases that move with traffic, and the audit trail.

The Airflow side has no mlflow package, so this speaks the documented REST endpoints
(`/api/2.0/mlflow/...`) with httpx. Aliases: the version under test is `challenger`;
promotion makes it `champion` and the old champion `previous`; a rollback leaves `champion`
alone, clears `challenger` and tags the version with the reason. Every check goes to the version's run as
metrics by check index, and the whole decision log as the artifact
`rollout/v<version>/decision_log.json` (when the server proxies artifacts).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
CONFIRM_TAG = "shipyard.rollout.confirm"  # "true" on the version: go to 100 % (manual confirmation)
ABORT_TAG = "shipyard.rollout.abort"  # any text on the version: roll back now, with that reason
STATUS_TAG = "shipyard.rollout.status"
REASON_TAG = "shipyard.rollout.reason"
MODEL_DIR_TAG = "shipyard.model_dir"  # where the local backend found the model files
PROXIED_ARTIFACTS = "mlflow-artifacts:/"


class RegistryError(RuntimeError):
    """An MLflow REST call failed."""


@dataclass(frozen=True)
class GateState:
    confirmed: bool
    abort_reason: str | None


class MlflowRegistry:
    def __init__(self, tracking_uri: str, model_name: str, timeout: float = 10) -> None:
        self.url = tracking_uri.rstrip("/")
        self.model_name = model_name
        self._http = httpx.Client(timeout=timeout)

    def _call(self, method: str, endpoint: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.url}/api/2.0/mlflow/{endpoint}"
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.HTTPError as e:
            raise RegistryError(f"MLflow {method} {endpoint} at {self.url} failed: {e}") from e
        if response.status_code != 200:
            raise RegistryError(
                f"MLflow {method} {endpoint} answered {response.status_code}: {response.text[:300]}"
            )
        return response.json()

    # --- versions and aliases ----------------------------------------------------------------

    def version(self, version: str) -> dict[str, Any]:
        found = self._call("GET", "model-versions/get", params={"name": self.model_name, "version": version})
        return found["model_version"]

    def download_uri(self, version: str) -> str:
        found = self._call(
            "GET", "model-versions/get-download-uri", params={"name": self.model_name, "version": version}
        )
        return found["artifact_uri"]

    def tags(self, version: str) -> dict[str, str]:
        return {tag["key"]: tag["value"] for tag in self.version(version).get("tags", [])}

    def alias(self, alias: str) -> str | None:
        """The version an alias points at; None when the alias is not set."""
        try:
            url = f"{self.url}/api/2.0/mlflow/registered-models/alias"
            response = self._http.get(url, params={"name": self.model_name, "alias": alias})
        except httpx.HTTPError as e:
            raise RegistryError(f"MLflow alias lookup {self.model_name}@{alias} failed: {e}") from e
        # MLflow 3 answers an unset alias with 400 INVALID_PARAMETER_VALUE "... not found" (older: 404).
        if response.status_code == 404 or (response.status_code == 400 and "not found" in response.text):
            return None
        if response.status_code != 200:
            raise RegistryError(
                f"MLflow alias lookup {self.model_name}@{alias}: {response.status_code} {response.text}"
            )
        return str(response.json()["model_version"]["version"])

    def set_alias(self, alias: str, version: str) -> None:
        self._call(
            "POST",
            "registered-models/alias",
            json={"name": self.model_name, "alias": alias, "version": version},
        )
        log.info("%s@%s → v%s", self.model_name, alias, version)

    def delete_alias(self, alias: str) -> None:
        if self.alias(alias) is not None:
            self._call("DELETE", "registered-models/alias", json={"name": self.model_name, "alias": alias})
            log.info("%s@%s removed", self.model_name, alias)

    def set_tag(self, version: str, key: str, value: str) -> None:
        self._call(
            "POST",
            "model-versions/set-tag",
            json={"name": self.model_name, "version": version, "key": key, "value": value},
        )

    def gate(self, version: str) -> GateState:
        """The manual gates on a version: confirmation before 100 %, and abort."""
        tags = self.tags(version)
        return GateState(tags.get(CONFIRM_TAG, "").lower() == "true", tags.get(ABORT_TAG) or None)

    # --- registry moves ------------------------------------------------------------------------

    def promote(self, version: str) -> str | None:
        """`champion` → version, `previous` → the old champion, `challenger` cleared; the old champion."""
        old = self.alias(CHAMPION)
        if old is not None and old != version:
            self.set_alias(PREVIOUS, old)
        self.set_alias(CHAMPION, version)
        if self.alias(CHALLENGER) == version:
            self.delete_alias(CHALLENGER)
        self.set_tag(version, STATUS_TAG, "promoted")
        return old

    def mark_rolled_back(self, version: str, reason: str) -> None:
        """Leave `champion` as it is; tag the version with the reason.

        `challenger` is cleared too when it names this version: the version is no longer
        under test, and nothing should pick it up as the next candidate by its alias.
        """
        if self.alias(CHALLENGER) == version:
            self.delete_alias(CHALLENGER)
        self.set_tag(version, STATUS_TAG, "rolled_back")
        self.set_tag(version, REASON_TAG, reason[:5000])

    # --- audit trail ---------------------------------------------------------------------------

    def log_checks(self, version: str, checks: list[dict[str, Any]]) -> None:
        """Each check as metrics `rollout.*` on the version's run, step = check index."""
        run_id = self.version(version).get("run_id")
        if not run_id:
            log.warning("%s v%s has no run: checks are not recorded as metrics", self.model_name, version)
            return
        metrics = [
            {
                "key": f"rollout.{key}",
                "value": float(check[key]),
                "timestamp": int(check["at"] * 1000),
                "step": check["index"],
            }
            for check in checks
            for key in ("weight", "requests", "error_rate", "p99_ms")
            if check.get(key) is not None
        ]
        for start in range(0, len(metrics), 1000):  # log-batch takes at most 1000 metrics
            self._call(
                "POST", "runs/log-batch", json={"run_id": run_id, "metrics": metrics[start : start + 1000]}
            )

    def upload_decision_log(self, version: str, decision_log: dict[str, Any]) -> str | None:
        """The decision log as a JSON artifact of the version's run; its URI (None if not possible)."""
        run_id = self.version(version).get("run_id")
        if not run_id:
            return None
        artifact_uri = self._call("GET", "runs/get", params={"run_id": run_id})["run"]["info"]["artifact_uri"]
        if not artifact_uri.startswith(PROXIED_ARTIFACTS):
            log.warning(
                "run %s stores artifacts at %s (not proxied): decision log kept in tags and metrics only",
                run_id,
                artifact_uri,
            )
            return None
        path = f"{artifact_uri[len(PROXIED_ARTIFACTS) :].strip('/')}/rollout/v{version}/decision_log.json"
        body = json.dumps(decision_log, indent=2).encode()
        try:
            response = self._http.put(f"{self.url}/api/2.0/mlflow-artifacts/artifacts/{path}", content=body)
            response.raise_for_status()
        except httpx.HTTPError as e:
            raise RegistryError(f"uploading the decision log of v{version} to {self.url} failed: {e}") from e
        return f"{artifact_uri.rstrip('/')}/rollout/v{version}/decision_log.json"
