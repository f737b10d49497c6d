"""ingest: copy the rows of [interval start, interval end) into an immutable snapshot partition.

Idempotent: a published partition is left alone (retries and backfills are safe) unless
`--force` re-ingests it. Rows are sorted by event time and id, so the same source rows give
the same content hash.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from shipyard_pipeline import chunks, dataset, engines, snapshot, source
from shipyard_pipeline.context import RunContext
from shipyard_pipeline.errors import CheckFailed
from shipyard_spec.contract import Step
from shipyard_spec.model import PipelineSpec

log = logging.getLogger(__name__)


def required_columns(spec: PipelineSpec) -> dict[str, str]:
    """{spec field: column} for every column the spec names explicitly."""
    named = {
        "columns.id": spec.columns.id,
        "columns.target": spec.columns.target,
        "columns.event_time": spec.columns.event_time,
        **{f"features.numeric[{i}]": c for i, c in enumerate(spec.features.numeric)},
        **{f"features.categorical[{i}]": c for i, c in enumerate(spec.features.categorical)},
    }
    return {field: column for field, column in named.items() if column}


def check_positive_label(spec: PipelineSpec, target: pd.Series, where: str) -> None:
    """CheckFailed when `columns.positive_label` matches none of the target's values although the
    target has both classes' worth of values (or one that differs only in case): a spec typo that
    would otherwise surface in train as a one-class split."""
    label = spec.columns.positive_label
    values = target.dropna()
    if values.empty or dataset.target_vector(spec, values).any():
        return
    found = sorted({str(v) for v in values.unique()})
    same_but_case = [v for v in found if v.casefold() == str(label).casefold()]
    if same_but_case:
        problem = f"differs only in case from {same_but_case[0]!r}"
    elif len(found) >= 2:
        problem = "matches none of them"
    else:
        log.warning(
            "%s: every %r value in this interval is %r, not the positive label %r",
            where, spec.columns.target, found[0], label,
        )  # fmt: skip
        return
    raise CheckFailed(
        f"columns.positive_label {label!r} {problem}: values of {spec.columns.target!r} in {where} "
        f"are {found[:10]}"
    )


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
    order = [c for c in (spec.columns.event_time, spec.columns.id) if c]
    targets: set[Any] = set()
    reading = engines.engine(context, Step.INGEST).read_source(
        spec, context.interval_start, context.interval_end, order
    )
    with reading as read, chunks.Spill(order) as spill:
        for chunk in read:
            if not spill.columns:
                _check_columns(spec, chunk, where)
            targets.update(chunk[spec.columns.target].dropna().unique())
            spill.add(chunk)
        if spill.rows == 0:
            raise CheckFailed(
                f"empty interval: {where} has no rows with {spec.columns.event_time} in "
                f"[{context.interval_start.isoformat()}, {context.interval_end.isoformat()})"
            )
        check_positive_label(spec, pd.Series(sorted(targets, key=str), dtype=object), where)
        dtypes = spill.dtypes()
        manifest = {
            "pipeline": spec.name,
            "interval_start": context.interval_start.isoformat(),
            "interval_end": context.interval_end.isoformat(),
            "rows": spill.rows,
            "columns": dtypes.astype(str).to_dict(),
            "schema_fingerprint": snapshot.dtypes_fingerprint(dtypes),
            "source": where,
            "run_id": context.run_id,
            "ingested_at": datetime.now(UTC).isoformat(),
        }
        rows = spill.chunks()
        if not spill.ordered:
            # The database sorts differently from pandas (a collation, NULL ids): sort here,
            # with the whole interval in memory.
            log.warning(
                "%s does not return rows in (%s) order as pandas sorts them: sorting in memory", where, order
            )
            rows = iter(
                [pd.concat(rows, ignore_index=True).sort_values(order, kind="stable", ignore_index=True)]
            )
        published = snapshot.publish_chunks(directory, rows, dtypes, spill.arrow_schema(), manifest)
    log.info(
        "published %s: %d rows, content hash %s", directory, spill.rows, published.manifest["content_hash"]
    )
    return _result(published, skipped=False)


def _check_columns(spec: PipelineSpec, chunk: pd.DataFrame, where: str) -> None:
    missing = {
        field: column for field, column in required_columns(spec).items() if column not in chunk.columns
    }
    if missing:
        named = ", ".join(f"{field} = {column!r}" for field, column in missing.items())
        raise CheckFailed(
            f"schema drift: {where} lacks the column(s) the spec names in {named} "
            f"(columns found: {list(chunk.columns)})"
        )


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
