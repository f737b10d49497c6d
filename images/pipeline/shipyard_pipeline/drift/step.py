"""drift: the champion's prediction logs of one window against its reference profile.

Runs as `shipyard-step drift` with the common step arguments (the window is the interval) and
`--log-root`; MLflow is reached like every other step (`tracking.connect()`: MLFLOW_TRACKING_URI
required, bounded retries). Prediction logs are read from `contract.prediction_log_dir(log_root,
contract.serving_name(pipeline))`, where the predictor writes them; the log root is `--log-root`,
else SHIPYARD_PREDICTION_LOG_URI, else `contract.default_prediction_log_root(storage_root)`.

Outcomes (the `status` in the result), none of which is an error:
- `no_champion`: nothing is serving yet, nothing to compare.
- `no_data`: no rows in the window; logged as "no data", never an alarm.
- `insufficient_data`: fewer rows than `drift.min_rows`; report written, no trigger.
- `checked`: report written; `drift_detected` says whether to retrain and `reasons` why.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from shipyard_pipeline import storage, tracking
from shipyard_pipeline.context import RunContext, expand_env
from shipyard_pipeline.drift.compare import compare, verdict
from shipyard_pipeline.drift.labels import live_auc, read_labels
from shipyard_pipeline.drift.prediction_logs import read_window
from shipyard_pipeline.drift.profile import PROFILE_ARTIFACT, ReferenceProfile
from shipyard_pipeline.drift.push import push_psi
from shipyard_pipeline.drift.report import html_report, text_table
from shipyard_pipeline.errors import StepError
from shipyard_spec.contract import Alias, Env, Step, default_prediction_log_root

log = logging.getLogger(__name__)


def log_root_of(context: RunContext, log_root: str | None) -> str:
    """`--log-root`, else SHIPYARD_PREDICTION_LOG_URI, else `{storage_root}/prediction_logs`."""
    chosen = (
        log_root
        or os.environ.get(Env.PREDICTION_LOG_URI)
        or default_prediction_log_root(context.storage_root)
    )
    return expand_env(chosen)


def run(context: RunContext, log_root: str | None = None) -> dict[str, Any]:
    """The step: connect to MLflow, then check the window (drift is a finding, never exit 3)."""
    return run_drift_check(context, log_root_of(context, log_root), tracking.connect())


def run_drift_check(context: RunContext, log_root: str, client: MlflowClient) -> dict[str, Any]:
    """Run the check and return the step result (also written to storage and MLflow)."""
    spec = context.spec
    result: dict[str, Any] = {
        "pipeline": spec.name,
        "model_name": spec.mlflow.registered_model,
        "interval_start": context.interval_start.isoformat(),
        "interval_end": context.interval_end.isoformat(),
        "run_id": context.run_id,
        "log_root": log_root,
        "drift_detected": False,
        "reasons": [],
    }
    champion = find_champion(client, spec.mlflow.registered_model)
    if champion is None:
        log.info("no champion yet for registered model %r: nothing to compare", spec.mlflow.registered_model)
        return {**result, "status": "no_champion", "model_version": None}
    result["model_version"] = champion.version
    profile = load_profile(champion)

    logs = read_window(log_root, spec.name, champion.version, context.interval_start, context.interval_end)
    result["counts"] = logs.counts()
    log.info("prediction log window %s: %s", result["interval_start"], result["counts"])
    if logs.rows_other_versions:
        log.info(
            "ignored %d rows of other model versions %s", logs.rows_other_versions, dict(logs.other_versions)
        )
    if logs.corrupt_files:
        log.warning("skipped %d corrupt prediction log files", len(logs.corrupt_files))
    if logs.rows.empty:
        log.info("no data: no rows of %s v%s in the window", champion.name, champion.version)
        return {**result, "status": "no_data"}

    drifts = compare(profile, logs.rows, spec.drift)
    auc = None
    if spec.drift.labels is not None:
        labels = read_labels(spec.drift.labels, spec.columns.positive_label)
        auc = live_auc(logs.rows, labels, spec.drift.min_rows)
        result["live_auc"] = {
            "auc": auc.auc,
            "reference_auc": profile.roc_auc,
            "labelled_rows": auc.labelled_rows,
        }
        log.info("live ROC AUC: %s (%s); champion test AUC %s", auc.auc, auc.note, profile.roc_auc)
    decision = verdict(
        drifts,
        live_auc=auc.auc if auc else None,
        reference_auc=profile.roc_auc,
        auc_tolerance=spec.drift.labels.auc_tolerance if spec.drift.labels else None,
    )
    enough = len(logs.rows) >= spec.drift.min_rows
    result.update(
        status="checked" if enough else "insufficient_data",
        drift_detected=decision.drift_detected and enough,
        reasons=decision.reasons if enough else [],
        psi={d.name: round(d.psi, 6) for d in drifts if d.kind != "score"},
        score_psi=round(next(d.psi for d in drifts if d.kind == "score"), 6),
        features=[d.to_dict() for d in drifts],
    )
    if not enough:
        log.info(
            "only %d rows, fewer than drift.min_rows=%d: report only, no trigger",
            len(logs.rows),
            spec.drift.min_rows,
        )
    log.info("drift of %s v%s:\n%s", champion.name, champion.version, text_table(drifts))
    log.info("verdict: %s %s", "DRIFT" if result["drift_detected"] else "no drift", result["reasons"])
    result.update(publish(context, champion, result, html_report(result, drifts), client))
    result.pop("features")
    result["metrics_push"] = push_psi(result)  # best effort: a Pushgateway outage never fails the step
    return result


def find_champion(client: MlflowClient, model_name: str) -> ModelVersion | None:
    """The version behind the `champion` alias, or None when there is none (yet)."""
    return tracking.version_by_alias(client, model_name, Alias.CHAMPION)


def load_profile(champion: ModelVersion) -> ReferenceProfile:
    """The reference profile logged with the champion's training run."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = download_artifacts(run_id=champion.run_id, artifact_path=PROFILE_ARTIFACT, dst_path=tmp)
        except (MlflowException, OSError) as e:
            raise StepError(
                f"{champion.name} v{champion.version} (run {champion.run_id}) has no {PROFILE_ARTIFACT}: "
                "drift needs the reference profile the train step logs"
            ) from e
        return ReferenceProfile.from_dict(json.loads(Path(path).read_text()))


def publish(
    context: RunContext, champion: ModelVersion, result: dict[str, Any], page: str, client: MlflowClient
) -> dict[str, str]:
    """Write report.html + drift.json to storage and log both to the champion's MLflow run."""
    base = context.step_dir(Step.DRIFT)
    documents = {"report.html": page, "drift.json": json.dumps(result, indent=2, default=str)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in documents.items():
            storage.write_text(storage.join(base, name), text)
            (Path(tmp) / name).write_text(text)
        artifact_dir = f"drift/{context.interval_end.date().isoformat()}"
        client.log_artifacts(champion.run_id, tmp, artifact_path=artifact_dir)
    client.set_model_version_tag(
        champion.name, champion.version, "drift.last_checked", result["interval_end"]
    )
    client.set_model_version_tag(
        champion.name, champion.version, "drift.detected", str(result["drift_detected"]).lower()
    )
    log.info("drift report: %s/report.html (MLflow run %s: %s)", base, champion.run_id, artifact_dir)
    return {
        "report_uri": f"{base}/report.html",
        "json_uri": f"{base}/drift.json",
        "mlflow_artifact_path": artifact_dir,
    }
