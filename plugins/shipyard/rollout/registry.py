"""The model registry as the rollout sees it: aliases that move with traffic, gates, audit trail.

Built on `MlflowHook` (mlflow-skinny's MlflowClient; retries on transport errors and 5xx,
`MlflowError` after the last attempt). Aliases (`contract.Alias`): the version under test is
`challenger`; promotion makes it `champion` and the old champion `previous`; a rollback
leaves `champion` alone and clears `challenger`. The version tag `shipyard.rollout.status`
(`contract.RolloutStatus`) records the decision.

Every move happens after the traffic moved, and in an order where each step is idempotent
(setting an alias to the version it names already, deleting an alias that is not set), so a
retry after a failure between any two steps finishes the job and traffic and aliases agree:

- `start(v)`: status `canary`, then `challenger` → v (before any traffic moves to v);
- `promote(v)` (v serves 100 %): status `promoted` first (the decision: a retry that finds it
  with `challenger` still on v finishes the promotion instead of analysing again), then
  `previous` → old champion, `champion` → v, `challenger` cleared;
- `mark_rolled_back(v, reason)` (stable serves 100 %): status `rolled_back` and the reason,
  then `challenger` cleared.

A rollout whose decision was never recorded (the registry was down when it ended) is left
with status `canary`; the next rollout of the model records it (`close_interrupted`).

Unset aliases are read from the registered model's alias map, never by parsing an error:
MLflow 3.17 answers `get_model_version_by_alias` for an unset alias with 400
INVALID_PARAMETER_VALUE, the same code as a malformed request.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from shipyard.hooks.mlflow import MlflowError, MlflowHook
from shipyard.rollout.shadow import SHADOW_FIGURES, SHADOW_STAGE_PREFIX, ShadowMode
from shipyard_spec.contract import Alias, RolloutStatus, Tag
from shipyard_spec.model import PipelineSpec

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

T = TypeVar("T")
PROXIED_ARTIFACTS = "mlflow-artifacts:/"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
MAX_METRICS_PER_BATCH = 1000  # MLflow's log-batch limit
MAX_TAG_VALUE = 5000


CHECK_METRICS = ("weight", "requests", "error_rate", "p99_ms")


def _metric_keys(check: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """(metric prefix, keys) logged for one decision-log entry: a canary check or a shadow comparison."""
    if "stage" in check:
        return [(check["stage"].replace("-", "."), SHADOW_FIGURES)]
    return [("rollout", CHECK_METRICS)]


@dataclass(frozen=True)
class GateState:
    confirmed: bool
    abort_reason: str | None


class MlflowRegistry:
    def __init__(self, hook: MlflowHook, model_name: str) -> None:
        self.hook = hook
        self.model_name = model_name

    @classmethod
    def for_spec(cls, spec: PipelineSpec, **hook_options: Any) -> MlflowRegistry:
        """The registered model of a pipeline, through its connection (`mlflow.conn_id`)."""
        return cls(MlflowHook(spec.mlflow.conn_id, **hook_options), spec.mlflow.registered_model)

    def _run(self, what: str, operation: Callable[[MlflowClient], T]) -> T:
        return self.hook.run(operation, f"{what} ({self.model_name})")

    # --- reading ---------------------------------------------------------------------------------

    def aliases(self) -> dict[str, str]:
        """Alias → version of the registered model; empty when the model is not registered yet."""
        try:
            model = self._run("reading the aliases", lambda c: c.get_registered_model(self.model_name))
        except MlflowError as e:
            if e.error_code == RESOURCE_DOES_NOT_EXIST:
                return {}
            raise
        return {alias: str(version) for alias, version in model.aliases.items()}

    def alias(self, alias: Alias) -> str | None:
        """The version an alias points at; None when the alias is not set."""
        return self.aliases().get(alias)

    def version(self, version: str) -> ModelVersion:
        return self._run(f"reading v{version}", lambda c: c.get_model_version(self.model_name, version))

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.version(version).tags)

    def gate(self, version: str) -> GateState:
        """The manual gates on a version: confirmation before 100 %, and abort."""
        tags = self.tags(version)
        return GateState(
            tags.get(Tag.ROLLOUT_CONFIRM, "").lower() == "true", tags.get(Tag.ROLLOUT_ABORT) or None
        )

    def model_files(self, version: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The version's `MLmodel` document and its input example (None without one), read
        through the registry from where the version's files are stored."""
        import mlflow.artifacts
        import yaml

        uri = self._run(
            f"locating v{version}", lambda c: c.get_model_version_download_uri(self.model_name, version)
        ).rstrip("/")

        def read(name: str) -> str:
            with tempfile.TemporaryDirectory() as tmp:
                path = self._run(
                    f"downloading {name} of v{version}",
                    lambda _c: mlflow.artifacts.download_artifacts(
                        artifact_uri=f"{uri}/{name}", dst_path=tmp, tracking_uri=self.hook.tracking_uri
                    ),
                )
                return Path(path).read_text()

        mlmodel = yaml.safe_load(read("MLmodel"))
        example_name = (mlmodel.get("saved_input_example_info") or {}).get("artifact_path")
        return mlmodel, json.loads(read(example_name)) if example_name else None

    # --- single writes (each idempotent) ---------------------------------------------------------

    def set_alias(self, alias: Alias, version: str) -> None:
        self._run(
            f"setting @{alias} to v{version}",
            lambda c: c.set_registered_model_alias(self.model_name, alias, version),
        )
        log.info("%s@%s → v%s", self.model_name, alias, version)

    def delete_alias(self, alias: Alias) -> None:
        """Remove an alias; MLflow accepts removing one that is not set."""
        self._run(f"removing @{alias}", lambda c: c.delete_registered_model_alias(self.model_name, alias))
        log.info("%s@%s removed", self.model_name, alias)

    def set_tag(self, version: str, key: str, value: str) -> None:
        self._run(
            f"tagging v{version} {key}",
            lambda c: c.set_model_version_tag(self.model_name, version, key, value[:MAX_TAG_VALUE]),
        )

    # --- registry moves, in the order a retry can finish -----------------------------------------

    def start(self, version: str) -> None:
        """The version goes under test: status `canary`, `challenger` → version."""
        self.set_tag(version, Tag.ROLLOUT_STATUS, RolloutStatus.CANARY)
        self.set_alias(Alias.CHALLENGER, version)

    def promote(self, version: str) -> str | None:
        """Record a promotion whose traffic already moved; the version it replaced (None at first).

        Status first, then `previous`, `champion`, `challenger`: after a failure at any step, a
        second call finishes it (a second call after success changes nothing).
        """
        aliases = self.aliases()
        old = aliases.get(Alias.CHAMPION)
        self.set_tag(version, Tag.ROLLOUT_STATUS, RolloutStatus.PROMOTED)
        if old is not None and old != version:
            self.set_alias(Alias.PREVIOUS, old)
        if old != version:
            self.set_alias(Alias.CHAMPION, version)
        if aliases.get(Alias.CHALLENGER) == version:
            self.delete_alias(Alias.CHALLENGER)
        return aliases.get(Alias.PREVIOUS) if old == version else old

    def mark_rolled_back(self, version: str, reason: str) -> None:
        """Record a rollback whose traffic already moved: status and reason, then `challenger` cleared.

        `champion` is left as it is; `challenger` is cleared only when it names this version, so
        nothing picks the rolled-back version up as the next candidate by its alias.
        """
        self.set_tag(version, Tag.ROLLOUT_REASON, reason)
        self.set_tag(version, Tag.ROLLOUT_STATUS, RolloutStatus.ROLLED_BACK)
        if self.alias(Alias.CHALLENGER) == version:
            self.delete_alias(Alias.CHALLENGER)

    def close_interrupted(self, current: str) -> list[str]:
        """Versions other than `current` whose rollout ended unrecorded (status still `canary`):
        recorded as rolled back, since the traffic follows `champion` from here on."""
        query = f"name='{self.model_name}' and tags.`{Tag.ROLLOUT_STATUS}` = '{RolloutStatus.CANARY}'"
        found = self._run("searching unfinished rollouts", lambda c: c.search_model_versions(query))
        stale = sorted((str(v.version) for v in found if str(v.version) != current), key=int)
        for version in stale:
            log.warning("%s v%s: its rollout ended without a recorded decision", self.model_name, version)
            self.mark_rolled_back(
                version,
                "rollout interrupted before its decision was recorded (registry unreachable); "
                f"the rollout of v{current} serves @{Alias.CHAMPION} as stable",
            )
        return stale

    # --- audit trail -----------------------------------------------------------------------------

    def log_checks(self, version: str, checks: list[dict[str, Any]]) -> None:
        """Each check as metrics `rollout.*` on the version's run, step = check index; the figures
        of a shadow comparison as `shadow.<mode>.*`, and its verdict and reason as the version tag
        `shipyard.shadow.<mode>`."""
        from mlflow.entities import Metric

        run_id = self.version(version).run_id
        if not run_id:
            log.warning("%s v%s has no run: checks are not recorded as metrics", self.model_name, version)
            return
        metrics = [
            Metric(f"{prefix}.{key}", float(check[key]), int(check["at"] * 1000), check["index"])
            for check in checks
            for prefix, keys in _metric_keys(check)
            for key in keys
            if check.get(key) is not None
        ]
        for check in checks:
            if "stage" in check:
                mode = ShadowMode(check["stage"].removeprefix(SHADOW_STAGE_PREFIX))
                self.set_tag(version, mode.tag, f"{check['verdict']}: {check['reason']}")
        for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            batch = metrics[start : start + MAX_METRICS_PER_BATCH]
            self._run(f"logging checks of v{version}", lambda c, b=batch: c.log_batch(run_id, metrics=b))

    def _proxied_run(self, version: str) -> tuple[str, str] | None:
        """(run id, artifact URI) of the version's run when the server proxies its artifacts."""
        run_id = self.version(version).run_id
        if not run_id:
            return None
        artifact_uri = self._run(f"reading run {run_id}", lambda c: c.get_run(run_id)).info.artifact_uri
        if not artifact_uri.startswith(PROXIED_ARTIFACTS):
            log.warning(
                "run %s stores artifacts at %s (not proxied by the server): decision log and plot kept "
                "out of it (tags and metrics only)",
                run_id,
                artifact_uri,
            )
            return None
        return run_id, artifact_uri.rstrip("/")

    def upload_decision_log(self, version: str, decision_log: dict[str, Any]) -> str | None:
        """The decision log as a JSON artifact of the version's run; its URI (None if not possible)."""
        return self._upload(
            version, "decision_log.json", lambda c, run_id, path: c.log_dict(run_id, decision_log, path)
        )

    def upload_figure(self, version: str, figure: Any, name: str) -> str | None:
        """A matplotlib figure as a PNG artifact of the version's run, beside the decision log;
        its URI (None if not possible)."""
        return self._upload(version, name, lambda c, run_id, path: c.log_figure(run_id, figure, path))

    def _upload(self, version: str, name: str, log_artifact: Callable[[Any, str, str], None]) -> str | None:
        """`log_artifact(client, run_id, path)` under the version's rollout directory; the URI."""
        run = self._proxied_run(version)
        if run is None:
            return None
        run_id, artifact_uri = run
        path = f"{rollout_artifact_dir(version)}/{name}"
        self._run(f"uploading {path}", lambda c: log_artifact(c, run_id, path))
        return f"{artifact_uri}/{path}"


def rollout_artifact_dir(version: str) -> str:
    """Where a rollout's audit trail goes in the version's run."""
    return f"rollout/v{version}"
