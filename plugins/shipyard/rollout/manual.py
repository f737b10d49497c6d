"""A manual rollback of the current release to the version aliased `previous`.

For the Airflow UI (`shipyard_rollback_<pipeline>`): serve `previous` with all the traffic,
then tag the version it replaces with the reason, make `previous` the `champion` again and
drop `previous` (it was used; the replaced version must not become a target of the next
manual rollback). Traffic first, registry after, each step idempotent: a retry after a
failure at any step (`champion` already equal to `previous`) finishes the moves.
"""

from __future__ import annotations

import logging
from typing import Any

from shipyard.rollout.backends import backend_for
from shipyard.rollout.operator import release_of
from shipyard.rollout.registry import MlflowRegistry
from shipyard_spec.contract import Alias
from shipyard_spec.model import PipelineSpec

log = logging.getLogger(__name__)


class NothingToRollBackTo(RuntimeError):
    """The registry has no `previous` version."""


def rollback_to_previous(spec: PipelineSpec, reason: str) -> dict[str, Any]:
    name = spec.mlflow.registered_model
    registry = MlflowRegistry.for_spec(spec)
    aliases = registry.aliases()
    previous, champion = aliases.get(Alias.PREVIOUS), aliases.get(Alias.CHAMPION)
    if previous is None:
        raise NothingToRollBackTo(
            f"{name} has no @{Alias.PREVIOUS} version to roll back to (champion: v{champion})"
        )
    log.info("rolling %s back from v%s to v%s: %s", name, champion, previous, reason)
    backend_for(spec).deploy_stable(
        release_of(spec, registry, previous), timeout=spec.rollout.progress_deadline_seconds
    )
    replaced = champion if champion != previous else None  # None: an earlier try switched the aliases
    if replaced is not None:
        registry.mark_rolled_back(replaced, f"manual rollback to v{previous}: {reason}")
        registry.set_alias(Alias.CHAMPION, previous)
    registry.delete_alias(Alias.PREVIOUS)
    log.info("champion is now %s v%s", name, previous)
    return {"champion": previous, "replaced": replaced, "reason": reason}
