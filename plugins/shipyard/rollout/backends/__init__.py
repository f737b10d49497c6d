"""Traffic backends: what actually runs the versions and splits traffic between them.

One controller, two backends: `local` (predictor processes behind one HAProxy per pipeline,
the embedded default) and `kserve` (an InferenceService through the Kubernetes API). A backend is
rebuilt from its JSON-safe `config()` inside the trigger, so it must not hold state that
lives only in memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from shipyard.rollout.providers import Target
from shipyard_spec.contract import serving_name
from shipyard_spec.model import PipelineSpec, Rollout


@dataclass(frozen=True)
class Release:
    """One model version as a backend deploys it."""

    model_name: str  # the registered model
    version: str
    model_dir: str = ""  # local backend: the MLflow model directory
    storage_uri: str = ""  # kserve backend: where the storage initializer fetches the model
    args: list[str] = field(default_factory=list)  # extra predictor arguments (fault injection)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Release:
        return cls(**data)


@dataclass(frozen=True)
class Mirror:
    """How the stable predictor mirrors for a live shadow (contract.Env.SHADOW_MIRROR_* values)."""

    sample_rate: float
    queue_size: int
    threshold: float


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    # The canary can never become ready (its process exited, its predictor reports a terminal
    # failure): the controller stops waiting at once and rolls back with `reason`.
    failed: bool = False


class TrafficBackend(Protocol):
    def deploy_stable(self, release: Release, timeout: float) -> None:
        """Serve `release` with all traffic, nothing else (a first release, a manual rollback)."""

    def deploy_canary(self, stable: Release, canary: Release) -> None:
        """Start `canary` beside the running `stable` with 0 % of the traffic; idempotent."""

    def canary_readiness(self) -> Readiness:
        """Whether the canary can take traffic, and why not."""

    def set_canary_weight(self, percent: int) -> None:
        """Send `percent` of the traffic to the canary and verify the split took effect."""

    def promote(self) -> None:
        """All traffic to the canary, which becomes the stable version; canary settings cleared."""

    def rollback(self) -> None:
        """All traffic back to stable and the declared state pointing at stable again."""

    def targets(self) -> tuple[Target, Target]:
        """(canary, stable) as the metrics provider names them."""

    def direct_urls(self) -> tuple[str, str] | None:
        """(canary, stable) base URLs of the predictors themselves, past the traffic split (the
        compatibility replay and the replay shadow send requests there before any traffic moves);
        None when this process cannot reach them."""

    def start_mirroring(self, mirror: Mirror) -> None:
        """Make the stable predictor mirror a copy of its requests to the canary (the live shadow)."""

    def stop_mirroring(self) -> None:
        """The stable predictor without mirroring again; a no-op when it does not mirror."""

    def config(self) -> dict[str, Any]:
        """JSON-safe arguments of `build_backend` that rebuild this backend elsewhere (the trigger)."""


def build_backend(policy: Rollout, config: dict[str, Any]) -> TrafficBackend:
    """The backend the spec names, from its `config()`; an unknown kind is an error."""
    kind = config.get("kind")
    if kind != policy.backend:
        raise ValueError(
            f"backend config kind {kind!r} does not match the spec's rollout.backend {policy.backend!r}"
        )
    if kind == "local":
        from shipyard.rollout.backends.local import LocalBackend

        return LocalBackend.from_config(config)
    if kind == "kserve":
        from shipyard.rollout.backends.kserve import KServeBackend

        return KServeBackend.from_config(policy.kserve, config)
    raise ValueError(f"unknown rollout backend {kind!r}: expected 'local' or 'kserve'")


def backend_for(spec: PipelineSpec) -> TrafficBackend:
    """A new backend for a pipeline: its embedded local stack, or its InferenceService."""
    if spec.rollout.backend == "local":
        from shipyard.rollout.backends.local import LocalBackend

        return LocalBackend.for_pipeline(spec.name, spec.rollout.local)
    target = spec.rollout.kserve
    name = target.name or serving_name(spec.name)
    return build_backend(spec.rollout, {"kind": "kserve", "name": name, "pipeline": spec.name})
