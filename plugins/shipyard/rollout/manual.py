"""A manual rollback of the current release to the version aliased `previous`.

For the Airflow UI (`shipyard_rollback_<pipeline>`): serve `previous` with all the traffic,
make it `champion` again, tag the version it replaces with the reason, and drop `previous`
(it was used; the replaced version must not become a target of the next manual rollback).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from shipyard.rollout.backends import backend_for
from shipyard.rollout.operator import release_of
from shipyard.rollout.registry import CHAMPION, MODEL_DIR_TAG, PREVIOUS, MlflowRegistry
from shipyard_spec.model import PipelineSpec

log = logging.getLogger(__name__)


class NothingToRollBackTo(RuntimeError):
    """The registry has no `previous` version."""


def rollback_to_previous(spec: PipelineSpec, reason: str, tracking_uri: str | None = None) -> dict[str, Any]:
    name = spec.mlflow.registered_model
    registry = MlflowRegistry(tracking_uri or os.environ["MLFLOW_TRACKING_URI"], name)
    previous, champion = registry.alias(PREVIOUS), registry.alias(CHAMPION)
    if previous is None:
        raise NothingToRollBackTo(
            f"{name} has no @{PREVIOUS} version to roll back to (champion: v{champion})"
        )
    release = release_of(spec, registry, previous, registry.tags(previous).get(MODEL_DIR_TAG))
    log.info("rolling %s back from v%s to v%s: %s", name, champion, previous, reason)
    backend_for(spec).deploy_stable(release, timeout=spec.rollout.progress_deadline_seconds)
    registry.set_alias(CHAMPION, previous)
    registry.delete_alias(PREVIOUS)
    if champion is not None:
        registry.mark_rolled_back(champion, f"manual rollback to v{previous}: {reason}")
    log.info("champion is now %s v%s", name, previous)
    return {"champion": previous, "replaced": champion, "reason": reason}
