"""The shadow step of a rollout: compare the challenger's predictions with the champion's before any
live traffic moves (run by the controller once the canary is ready, at 0 %).

- **replay**: the newest `shadow.sample_rows` requests the champion logged in the last
  `shadow.lookback_days` (its prediction log: the inputs the client sent and the score it got)
  are sent to the challenger's own URL (not through the traffic split); pairs = (logged score,
  challenger score);
- **live** (`shadow.live_seconds`): the backend makes the stable predictor mirror a copy of its
  live requests to the challenger; after the duration the pairs the mirror logged are compared.

Both end in `shadow.judge`. Labels (`drift.labels`) are joined to the pairs by the client's row id.
`ShadowContext` is what the operator hands the trigger (JSON-safe).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shipyard.rollout.backends import Mirror, TrafficBackend
from shipyard.rollout.errors import BackendError
from shipyard.rollout.shadow import ShadowCheck, ShadowError, ShadowMode, ShadowRejected, judge
from shipyard.rollout.shadow_io import read_labels, read_logged_requests, read_paired_log, score_rows
from shipyard_spec.contract import (
    Env,
    default_prediction_log_root,
    prediction_log_dir,
    serving_name,
    shadow_log_dir,
)
from shipyard_spec.model import LabelsSource, PipelineSpec, Shadow
from shipyard_spec.shadow import Pair

log = logging.getLogger(__name__)


class ShadowNoLogs(Exception):
    """The champion has logged nothing to replay yet (inconclusive, never a pass)."""


@dataclass(frozen=True)
class ShadowContext:
    """Everything the shadow step needs besides the backend, JSON-safe for the trigger."""

    policy: dict[str, Any]  # the spec's rollout.shadow
    threshold: float  # evaluation.threshold: where a score becomes a decision
    log_root: (
        str  # where the predictors log (SHIPYARD_PREDICTION_LOG_URI, else <storage root>/prediction_logs)
    )
    served_name: str
    champion_version: str
    challenger_version: str
    labels: dict[str, Any] | None = None  # drift.labels
    positive_label: str | int | None = None

    @classmethod
    def for_spec(cls, spec: PipelineSpec, champion: str, challenger: str) -> ShadowContext | None:
        """The context of `spec`'s shadow policy (None: the spec has none). The served name is the
        name the predictors serve and log under (the InferenceService's on KServe)."""
        if spec.rollout.shadow is None:
            return None
        from shipyard.settings import storage_root

        kserve_name = spec.rollout.kserve.name if spec.rollout.backend == "kserve" else None
        served_name = kserve_name or serving_name(spec.name)
        return cls(
            policy=spec.rollout.shadow.model_dump(mode="json"),
            threshold=spec.evaluation.threshold,
            log_root=os.environ.get(Env.PREDICTION_LOG_URI) or default_prediction_log_root(storage_root()),
            served_name=served_name,
            champion_version=champion,
            challenger_version=challenger,
            labels=spec.drift.labels.model_dump(mode="json") if spec.drift.labels else None,
            positive_label=spec.columns.positive_label,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ShadowStage:
    def __init__(self, context: ShadowContext, backend: TrafficBackend) -> None:
        self.context = context
        self.policy = Shadow.model_validate(context.policy)
        self.backend = backend

    def _labelled(self, pairs: list[tuple[Pair, str | None]]) -> list[Pair]:
        """The pairs with their label where one arrived (`drift.labels`, joined by row id)."""
        if not self.context.labels:
            return [pair for pair, _ in pairs]
        ids = [row_id for _, row_id in pairs if row_id is not None]
        labels = read_labels(
            LabelsSource.model_validate(self.context.labels), self.context.positive_label, ids
        )
        return [
            Pair(pair.champion, pair.challenger, labels.get(row_id) if row_id is not None else None)
            for pair, row_id in pairs
        ]

    def replay(self, now: datetime | None = None) -> ShadowCheck:
        """The challenger scores the champion's logged requests; the pairs judged."""
        ctx = self.context
        since = (now or datetime.now(UTC)) - timedelta(days=self.policy.lookback_days)
        log_dir = prediction_log_dir(ctx.log_root, ctx.served_name)
        try:
            logged = read_logged_requests(log_dir, ctx.champion_version, since, self.policy.sample_rows)
            if not logged:
                raise ShadowNoLogs(
                    f"no request of champion v{ctx.champion_version} logged under {log_dir} "
                    f"since {since:%Y-%m-%d}"
                )
            urls = self.backend.direct_urls()
            if urls is None:
                raise ShadowError("no direct route to the canary predictor (no canary deployed)")
            scores = score_rows(
                urls[0],
                ctx.served_name,
                [row.inputs for row in logged],
                self.policy.batch_size,
                self.policy.request_timeout_seconds,
            )
            pairs = self._labelled(
                [(Pair(row.score, score), row.id) for row, score in zip(logged, scores, strict=True)]
            )
        except ShadowNoLogs as e:
            check = judge(ShadowMode.REPLAY, [], self.policy, ctx.threshold)
            return ShadowCheck(check.mode, check.verdict, f"{e}: {check.reason}")
        except (ShadowError, ShadowRejected) as e:
            return judge(ShadowMode.REPLAY, e, self.policy, ctx.threshold)
        except BackendError as e:
            return judge(ShadowMode.REPLAY, ShadowError(str(e)), self.policy, ctx.threshold)
        return judge(ShadowMode.REPLAY, pairs, self.policy, ctx.threshold)

    def start_live(self) -> None:
        self.backend.start_mirroring(
            Mirror(self.policy.live_sample_rate, self.policy.live_queue_size, self.context.threshold)
        )

    def live(self, since: datetime) -> ShadowCheck:
        """The pairs the mirroring stable predictor logged since `since`, judged."""
        ctx = self.context
        directory = shadow_log_dir(ctx.log_root, ctx.served_name, ctx.challenger_version)
        try:
            pairs = self._labelled(read_paired_log(directory, since))
        except ShadowError as e:
            return judge(ShadowMode.LIVE, e, self.policy, ctx.threshold)
        return judge(ShadowMode.LIVE, pairs, self.policy, ctx.threshold)
