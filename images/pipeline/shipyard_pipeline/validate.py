"""validate: check the run's snapshot with Great Expectations before anything is trained on it.

The suite (`expectations.build_suite`) runs where the spec's engine holds the rows: a pandas
frame in the step process, or a Spark DataFrame through Great Expectations' Spark datasource.

The report (`_VALIDATION.md`, `_VALIDATION.json`) is written next to the snapshot and logged
to an MLflow run, whether the data passed or not. A failure quarantines the snapshot (no
training window takes it, in this run or any later one) and raises `CheckFailed` (exit 3), so
the DAG stops and nothing downstream runs; a pass lifts an earlier quarantine.
"""

from __future__ import annotations

import logging
from typing import Any

from shipyard_pipeline import engines, snapshot, storage, tracking
from shipyard_pipeline.context import RunContext
from shipyard_pipeline.errors import CheckFailed, StepError
from shipyard_pipeline.expectations import build_suite
from shipyard_spec.contract import Step, Tag

log = logging.getLogger(__name__)

REPORT_FILE = "_VALIDATION.md"
RESULT_FILE = "_VALIDATION.json"


def check(context: RunContext, published: snapshot.Snapshot) -> dict[str, Any]:
    """Run the suite on the snapshot on the spec's engine; the Great Expectations result, JSON-safe."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    gx_context = gx.get_context(mode="ephemeral")
    gx_context.variables.progress_bars = ProgressBarsConfig(globally=False)
    engine = engines.engine(context, Step.VALIDATE)
    with engine.validation_batch(gx_context, context.spec, published) as (batch, features):
        return batch.validate(build_suite(context.spec, features)).to_json_dict()


def outcomes(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per expectation: what was checked, on which column, and what was observed."""
    rows = []
    for item in result["results"]:
        config = item["expectation_config"]
        kwargs = {k: v for k, v in config["kwargs"].items() if k not in ("batch_id", "column")}
        observed = item.get("result", {})
        if "observed_value" in observed:
            seen = f"observed {observed['observed_value']}"
        elif "unexpected_count" in observed:
            sample = observed.get("partial_unexpected_list", [])[:5]
            share = observed.get("unexpected_percent") or 0
            seen = f"{observed['unexpected_count']} unexpected ({share:.2f}%) e.g. {sample}"
        else:
            seen = "column missing" if not item["success"] else ""
        rows.append(
            {
                "success": bool(item["success"]),
                "expectation": config["type"],
                "column": config["kwargs"].get("column", ""),
                "arguments": kwargs,
                "observed": seen,
            }
        )
    return rows


def markdown_report(context: RunContext, rows: list[dict[str, Any]], manifest: dict[str, Any]) -> str:
    failed = [r for r in rows if not r["success"]]
    lines = [
        f"# Validation of {context.spec.name} [{manifest['interval_start']}, {manifest['interval_end']})",
        "",
        f"- verdict: **{'FAILED' if failed else 'passed'}** "
        f"({len(rows) - len(failed)}/{len(rows)} expectations met)",
        f"- rows: {manifest['rows']}, content hash `{manifest['content_hash']}`, run `{context.run_id}`",
        "",
        "| | expectation | column | arguments | observed |",
        "|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: r["success"]):
        arguments = ", ".join(f"{k}={v}" for k, v in row["arguments"].items())
        arguments = arguments if len(arguments) <= 80 else arguments[:77] + "..."
        observed = str(row["observed"]).replace("|", "\\|")
        lines.append(
            f"| {'✅' if row['success'] else '❌'} | {row['expectation']} | {row['column']} "
            f"| {arguments} | {observed} |"
        )
    return "\n".join(lines) + "\n"


def run(context: RunContext) -> dict[str, Any]:
    client = tracking.connect()
    directory = context.snapshot_dir()
    published = snapshot.read_published(directory)
    if published is None:
        raise StepError(f"no published snapshot at {directory}: run ingest for this interval first")
    result = check(context, published)
    rows = outcomes(result)
    failed = [r for r in rows if not r["success"]]
    report_uri = storage.join(directory, REPORT_FILE)
    result_uri = storage.join(directory, RESULT_FILE)
    storage.write_text(report_uri, markdown_report(context, rows, published.manifest))
    storage.write_json(
        result_uri, {"success": not failed, "expectations": rows, "great_expectations": result}
    )
    failures = [f"{r['expectation']}({r['column']}): {r['observed']}" for r in failed]
    if failed:  # the verdict is known: quarantine before anything else can fail
        snapshot.quarantine(
            published,
            {
                "reason": f"failed {len(failed)}/{len(rows)} expectations",
                "failures": failures,
                "content_hash": published.manifest["content_hash"],
                "run_id": context.run_id,
                "report_uri": report_uri,
            },
        )
    elif published.quarantined:
        snapshot.release(published)
        log.info("quarantine of %s lifted: it passed validation", directory)

    import mlflow

    experiment_id = tracking.experiment_id(client, context.spec.mlflow.experiment)
    run_name = f"validate-{context.interval_start.date().isoformat()}"
    tags = {
        **context.tags(),
        Tag.STEP: Step.VALIDATE,
        "shipyard.content_hash": published.manifest["content_hash"],
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as active:
        mlflow.log_metrics(
            {
                "expectations_evaluated": len(rows),
                "expectations_failed": len(failed),
                "rows": published.manifest["rows"],
            }
        )
        fs, path = storage.filesystem(report_uri)
        mlflow.log_text(fs.cat_file(path).decode(), f"validation/{REPORT_FILE.lstrip('_').lower()}")
        mlflow.log_dict({"success": not failed, "expectations": rows}, "validation/validation.json")
        mlflow_run_id = active.info.run_id
    summary = {
        "success": not failed,
        "expectations_evaluated": len(rows),
        "expectations_failed": len(failed),
        "failures": failures,
        "quarantined": bool(failed),
        "rows": published.manifest["rows"],
        "snapshot_uri": directory,
        "report_uri": report_uri,
        "result_uri": result_uri,
        "mlflow_run_id": mlflow_run_id,
        "mlflow_run_url": tracking.run_url(experiment_id, mlflow_run_id),
    }
    if failed:
        log.error("validation failed:\n%s", "\n".join(f"  {f}" for f in summary["failures"]))
        log.error("quarantined %s: fix the source, re-ingest (ingest --force), validate again", directory)
        raise CheckFailed(
            f"validation of {directory} failed {len(failed)}/{len(rows)} expectations: "
            + "; ".join(summary["failures"][:3])
            + (" ..." if len(failed) > 3 else "")
            + f" (report: {report_uri})"
        )
    log.info("validation passed: %d expectations, report %s", len(rows), report_uri)
    return summary
