"""train: fit the Pipeline on the training window, track it in MLflow, keep the split for evaluate.

Outputs: an MLflow run (params, validation metrics, dataset fingerprints, code version,
Airflow run tags, the logged model, `reference_profile.json` for drift, the spec) and the
split as Parquet under `{root}/{pipeline}/runs/{run_id}/train/split/`, so evaluate scores
exactly the rows the model never saw.

Idempotent per Airflow run: a re-run of a run that already trained (a cleared task, a backfill
with `--reprocess-behavior completed`) on the same snapshots with the same options reuses that
finished MLflow run and its result, so register finds the same model version instead of
registering a duplicate.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import mlflow
import mlflow.data
import mlflow.sklearn
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sklearn
import xgboost
from mlflow import MlflowClient
from mlflow.entities import RunStatus

from shipyard_pipeline import dataset, engines, snapshot, storage, tracking
from shipyard_pipeline.context import RunContext
from shipyard_pipeline.drift.profile import PROFILE_ARTIFACT, build_reference_profile
from shipyard_pipeline.model_artifact import model_kwargs
from shipyard_pipeline.training_window import PARTS
from shipyard_spec.contract import Step, Tag

log = logging.getLogger(__name__)

MODEL_NAME = "model"  # the logged model's name inside the run


def split_uri(context: RunContext, part: str) -> str:
    return storage.join(context.step_dir(Step.TRAIN), "split", f"{part}.parquet")


def read_split_sample(
    context: RunContext, part: str, columns: list[str], rows: int, seed: int
) -> pd.DataFrame:
    """At most `rows` rows of a split part, `columns` only: the whole part when it is no larger, else
    a seeded uniform sample (the same rows on every run). The part is read a batch at a time and only
    the sampled rows are kept, so the memory is the sample's, whatever the part's size."""
    fs, path = storage.filesystem(split_uri(context, part))
    with fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        total = parquet.metadata.num_rows
        if total <= rows:
            return parquet.read(columns=columns).to_pandas()
        picked = np.sort(np.random.default_rng(seed).choice(total, rows, replace=False))
        kept, start = [], 0
        for batch in parquet.iter_batches(columns=columns):
            first, last = np.searchsorted(picked, [start, start + batch.num_rows])
            kept.append(pa.Table.from_batches([batch]).take(picked[first:last] - start))
            start += batch.num_rows
    return pa.concat_tables(kept).to_pandas()


def pip_requirements() -> list[str]:
    """The serving environment, pinned to the versions that fitted the model (CPU build of xgboost)."""
    return [
        f"mlflow=={mlflow.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"xgboost-cpu=={xgboost.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
    ]


def earlier_result(
    context: RunContext, client: MlflowClient, fingerprint: str, intervals: int, tune: bool
) -> dict[str, Any] | None:
    """This Airflow run's stored train result, when it trained on the same data with the same
    options and its MLflow run finished; None when the step must train."""
    uri = context.step_result_uri(Step.TRAIN)
    if not storage.exists(uri):
        return None
    result = storage.read_json(uri)
    same = (
        result.get("dataset_fingerprint") == fingerprint
        and result.get("window_intervals") == intervals
        and bool(result.get("tuning", {}).get("enabled")) == tune
    )
    if not same:
        log.info("run %s trained before on other data or options: training again", context.run_id)
        return None
    status = client.get_run(result["mlflow_run_id"]).info.status
    if status != RunStatus.to_string(RunStatus.FINISHED):
        log.info("MLflow run %s of an earlier try is %s: training again", result["mlflow_run_id"], status)
        return None
    return result


def run(
    context: RunContext, window_intervals: int | None = None, skip_tuning: bool = False
) -> dict[str, Any]:
    spec = context.spec
    client = tracking.connect()
    intervals = window_intervals or spec.training.window_intervals
    tune = spec.model.tuning.enabled and not skip_tuning
    snapshots = dataset.window_snapshots(
        context.snapshots_root, context.interval_start, context.interval_end, intervals
    )
    manifests = [s.manifest for s in snapshots]
    fingerprint = snapshot.dataset_fingerprint(manifests)
    if (earlier := earlier_result(context, client, fingerprint, intervals, tune)) is not None:
        log.info(
            "run %s already trained on these snapshots (fingerprint %s): reusing MLflow run %s",
            context.run_id,
            fingerprint,
            earlier["mlflow_run_id"],
        )
        return earlier
    with engines.engine(context, Step.TRAIN).training_data(spec, snapshots) as window:
        features, rows = window.features, window.rows
        log.info(
            "%d rows from %d snapshot(s): train %d, validation %d, test %d; "
            "features %d numeric, %d categorical",
            sum(rows.values()), len(snapshots), rows["train"], rows["validation"], rows["test"],
            len(features.numeric), len(features.categorical),
        )  # fmt: skip
        started = time.monotonic()
        fit = window.fit(spec.model, tune=tune, seed=spec.split.seed)
        fit_seconds = time.monotonic() - started
        window.write_split({name: split_uri(context, name) for name in PARTS})
        test = window.part("test")
        samples = {name: window.sample(name) for name in PARTS}

    target = spec.columns.target
    x_test = test[features.columns]
    y_test = dataset.target_vector(spec, test[target])
    test_scores = fit.pipeline.predict_proba(x_test)[:, 1]
    profile = build_reference_profile(
        x_test, test_scores, features.numeric, features.categorical, bins=spec.drift.bins, labels=y_test
    )
    experiment_id = tracking.experiment_id(client, spec.mlflow.experiment)
    tags = {
        **context.tags(),
        Tag.STEP: Step.TRAIN,
        Tag.DATASET_FINGERPRINT: fingerprint,
        Tag.CODE_VERSION: tracking.code_version(),
    }
    run_name = f"{spec.name}-{context.interval_end.date().isoformat()}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as active:
        mlflow.log_params({f"model.{k}": v for k, v in fit.params.items()})
        mlflow.log_params(
            {
                "window_intervals": intervals,
                "snapshots": len(snapshots),
                "engine": spec.engine,
                "features.numeric": ",".join(features.numeric),
                "features.categorical": ",".join(features.categorical),
                "split.policy": dataset.applied_split_policy(spec),
                "tuning": json.dumps(fit.tuning.get("enabled", False)),
            }
        )
        mlflow.log_metrics(
            {
                "validation_roc_auc": fit.validation_roc_auc,
                "fit_seconds": fit_seconds,
                "rows_train": rows["train"],
                "rows_validation": rows["validation"],
                "rows_test": rows["test"],
                **({"early_stopped_trees": fit.trees} if fit.trees else {}),
            }
        )
        with warnings.catch_warnings():
            # from_pandas warns that integer columns cannot hold missing values and that a local
            # path matches two source types; both are about MLflow's dataset record, not the model.
            warnings.simplefilter("ignore", UserWarning)
            for name, sample in samples.items():
                # The record's schema and digest from a bounded sample (its profile then counts the
                # sample's rows; the split's own row count is the metric rows_<part>).
                dataset_record = mlflow.data.from_pandas(
                    sample,
                    source=split_uri(context, name),
                    targets=target,
                    name=f"{spec.name}-{name}",
                )
                mlflow.log_input(dataset_record, context=name)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / PROFILE_ARTIFACT).write_text(json.dumps(profile.to_dict()))
            (Path(tmp) / "snapshots.json").write_text(json.dumps(manifests, indent=2))
            if fit.tuning.get("enabled"):
                (Path(tmp) / "tuning.json").write_text(json.dumps(fit.tuning, indent=2))
            mlflow.log_artifacts(tmp)
        mlflow.log_dict(spec.model_dump(mode="json"), "spec.json")
        model_info = mlflow.sklearn.log_model(
            name=MODEL_NAME,
            pip_requirements=pip_requirements(),
            **model_kwargs(fit.pipeline, samples["train"][features.columns]),
        )
        run_id = active.info.run_id
    log.info("MLflow run %s, model %s", run_id, model_info.model_uri)
    return {
        "mlflow_run_id": run_id,
        "mlflow_run_url": tracking.run_url(experiment_id, run_id),
        "mlflow_experiment_id": experiment_id,
        "model_uri": model_info.model_uri,
        "model_id": model_info.model_id,
        "features": {"numeric": features.numeric, "categorical": features.categorical},
        "rows": rows,
        "split_uri": storage.join(context.step_dir(Step.TRAIN), "split"),
        "snapshots": len(snapshots),
        "window": [snapshots[0].manifest["interval_start"], snapshots[-1].manifest["interval_end"]],
        "dataset_fingerprint": fingerprint,
        "window_intervals": intervals,
        "engine": spec.engine,
        "params": fit.params,
        "trees": fit.params.get("n_estimators"),
        "validation_roc_auc": fit.validation_roc_auc,
        "tuning": fit.tuning,
        "reference_profile": PROFILE_ARTIFACT,
    }
