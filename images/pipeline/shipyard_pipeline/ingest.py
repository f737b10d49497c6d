"""ingest: copy the rows of [interval start, interval end) into an immutable snapshot partition.

Idempotent: a published partition is left alone (retries and backfills are safe) unless
`--force` re-ingests it. Rows are sorted by event time and id, so the same source rows give
the same content hash.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from shipyard_pipeline import snapshot, source
from shipyard_pipeline.context import RunContext
from shipyard_pipeline.errors import CheckFailed
from shipyard_spec.model import PipelineSpec

log = logging.getLogger(__name__)


def required_columns(spec: PipelineSpec) -> list[str]:
    """Columns the spec names explicitly; a source without one of them has drifted."""
    special = [spec.columns.id, spec.columns.target, spec.columns.event_time]
    return [c for c in [*special, *spec.features.numeric, *spec.features.categorical] if c]


def run(context: RunContext, force: bool = False) -> dict[str, Any]:
    spec = context.spec
    directory = context.snapshot_dir()
    existing = snapshot.read_published(directory)
    if existing is not None and not force:
        log.info(
            "snapshot %s already published (%d rows): nothing to do", directory, existing.manifest["rows"]
        )
        if existing.quarantined:
            log.warning(
                "snapshot %s is quarantined (%s): fix the source and re-ingest with --force",
                directory,
                existing.quarantine.get("reason", ""),
            )
        return _result(existing, skipped=True)

    where = source.describe(spec)
    log.info(
        "reading %s for [%s, %s)", where, context.interval_start.isoformat(), context.interval_end.isoformat()
    )
    frame = source.read_interval(spec, context.interval_start, context.interval_end)
    missing = [c for c in required_columns(spec) if c not in frame.columns]
    if missing:
        raise CheckFailed(f"schema drift: {where} lacks column(s) {missing} named in the spec")
    if frame.empty:
        raise CheckFailed(
            f"empty interval: {where} has no rows with {spec.columns.event_time} in "
            f"[{context.interval_start.isoformat()}, {context.interval_end.isoformat()})"
        )
    order = [c for c in (spec.columns.event_time, spec.columns.id) if c]
    frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    manifest = {
        "pipeline": spec.name,
        "interval_start": context.interval_start.isoformat(),
        "interval_end": context.interval_end.isoformat(),
        "rows": len(frame),
        "columns": frame.dtypes.astype(str).to_dict(),
        "schema_fingerprint": snapshot.schema_fingerprint(frame),
        "content_hash": snapshot.content_hash(frame),
        "source": where,
        "run_id": context.run_id,
        "ingested_at": datetime.now(UTC).isoformat(),
    }
    published = snapshot.publish(directory, frame, manifest)
    log.info("published %s: %d rows, content hash %s", directory, len(frame), manifest["content_hash"])
    return _result(published, skipped=False)


def _result(published: snapshot.Snapshot, skipped: bool) -> dict[str, Any]:
    manifest = published.manifest
    return {
        "snapshot_uri": published.directory,
        "data_uri": published.data_uri,
        "rows": manifest["rows"],
        "schema_fingerprint": manifest["schema_fingerprint"],
        "content_hash": manifest["content_hash"],
        "interval_start": manifest["interval_start"],
        "interval_end": manifest["interval_end"],
        "skipped": skipped,
        "quarantined": published.quarantined,
    }
