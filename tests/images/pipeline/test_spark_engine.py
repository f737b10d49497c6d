"""The Spark engine's training (`engine: spark`) on the Telco demo data, `local[2]`, against pandas.

The same weeks are ingested into two storage roots and the steps run as subprocesses (as the local
runner runs them) for one spec with `engine: pandas` and the same spec with `engine: spark`; only the
engine differs. The preprocessing fitted from Spark aggregates transforms like scikit-learn's fit on
the same rows; the test ROC AUCs agree within AUC_TOLERANCE (XGBoost's distributed histogram sketch
and the workers' row order differ from the single-process fit, so the boosters are not identical);
the Spark-trained version, registered as the pandas one is, is served by the real predictor (its
fast path passing its parity check) and scores its logged input example as the logged Pipeline does.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.models import Model
from predictor_process import predictor
from step_process import run_cli

from shipyard_pipeline import dataset, demo, snapshot, spark_engine, spark_fit
from shipyard_spec import load_spec
from shipyard_spec.contract import Env, Step, serving_name

pytestmark = pytest.mark.spark

WEEKS = 8
AUC_TOLERANCE = 0.02
ENGINES = ("pandas", "spark")


@pytest.fixture(scope="module")
def chains(
    tmp_path_factory: pytest.TempPathFactory,
    shipyard_home: Path,
    telco_spec: Path,
    mlflow_tracking_uri: str,
    last_week: tuple[datetime, datetime],
) -> dict[str, dict[str, Any]]:
    start, end = last_week
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_tracking_uri,
        "SHIPYARD_HOME": str(shipyard_home),
        Env.SPARK_MASTER: "local[2]",
    }
    chains: dict[str, dict[str, Any]] = {}
    for engine in ENGINES:
        workdir = tmp_path_factory.mktemp(f"engine-{engine}")
        spec = yaml.safe_load(telco_spec.read_text())
        spec.update(name="telco_engines", engine=engine)
        spec["training"]["window_intervals"] = WEEKS
        spec["model"] = {"params": {"n_estimators": 150, "max_depth": 3}, "tuning": {"enabled": False}}
        spec["gates"] = {"min_roc_auc": 0.5, "max_baseline_shortfall": 1.0}
        registry = f"telco_engines_{engine}"
        spec["mlflow"] = {"experiment": registry, "registered_model": registry}
        spec_path = workdir / "telco_engines.yaml"
        spec_path.write_text(yaml.safe_dump(spec))
        storage_root = workdir / "storage"
        with pytest.MonkeyPatch.context() as patch:  # ingested by the engine, in this process
            patch.setenv(Env.SPARK_MASTER, "local[2]")
            demo.ingest_history(spec_path, str(storage_root), WEEKS - 1, end=end)
        common = [
            "--spec", str(spec_path), "--interval-start", start.isoformat(),
            "--interval-end", end.isoformat(), "--run-id", "scheduled__engines",
            "--storage-root", str(storage_root),
        ]  # fmt: skip
        results: dict[str, Any] = {}
        for step in (Step.INGEST, Step.VALIDATE, Step.TRAIN, Step.EVALUATE, Step.REGISTER):
            results[step], results[f"{step}_seconds"] = run_cli(step, common, workdir, env)
        split = Path(results[Step.TRAIN]["split_uri"])
        chains[engine] = {
            "results": results,
            "workdir": workdir,
            "snapshots": snapshot.list_published(str(storage_root / "telco_engines" / "snapshots")),
            # The registered version as the predictor gets it.
            "pipeline": mlflow.sklearn.load_model(results[Step.REGISTER]["serving_uri"]),
            "train": pd.read_parquet(split / "train.parquet"),
            "validation": pd.read_parquet(split / "validation.parquet"),
            "test": pd.read_parquet(split / "test.parquet"),
            "spec": load_spec(spec_path),
        }
    return chains


def test_spark_ingest_publishes_the_snapshots_of_pandas_ingest(chains) -> None:
    pandas, spark = chains["pandas"]["snapshots"], chains["spark"]["snapshots"]
    assert len(spark) == len(pandas) == WEEKS
    assert [s.manifest["content_hash"] for s in spark] == [s.manifest["content_hash"] for s in pandas]
    assert chains["spark"]["results"][Step.INGEST]["content_hash"] == pandas[-1].manifest["content_hash"]


def test_both_engines_train_on_the_same_rows(chains) -> None:
    """The window Spark reads and splits is the pandas one, row for row."""
    pandas, spark = chains["pandas"]["results"], chains["spark"]["results"]
    assert (pandas[Step.TRAIN]["engine"], spark[Step.TRAIN]["engine"]) == ENGINES
    assert spark[Step.TRAIN]["dataset_fingerprint"] == pandas[Step.TRAIN]["dataset_fingerprint"]
    assert spark[Step.TRAIN]["rows"] == pandas[Step.TRAIN]["rows"]
    for part in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(chains["spark"][part], chains["pandas"][part])


def test_preprocessing_fitted_from_spark_aggregates_transforms_like_scikit_learns_fit(chains) -> None:
    from_spark = chains["spark"]["pipeline"].named_steps["preprocess"]
    from_pandas = chains["pandas"]["pipeline"].named_steps["preprocess"]
    for rows in (chains["pandas"]["train"], chains["pandas"]["test"]):
        np.testing.assert_allclose(from_spark.transform(rows), from_pandas.transform(rows), rtol=0, atol=1e-9)


def test_spark_and_pandas_fits_agree_on_roc_auc(chains) -> None:
    pandas, spark = chains["pandas"]["results"], chains["spark"]["results"]
    for step, metric in ((Step.TRAIN, "validation_roc_auc"), (Step.EVALUATE, "metrics")):
        pandas_auc, spark_auc = pandas[step][metric], spark[step][metric]
        if step == Step.EVALUATE:
            pandas_auc, spark_auc = pandas_auc["roc_auc"], spark_auc["roc_auc"]
        print(f"roc_auc {step}: pandas {pandas_auc:.4f}, spark {spark_auc:.4f}")
        assert abs(spark_auc - pandas_auc) <= AUC_TOLERANCE, (step, spark_auc, pandas_auc)
    assert spark[Step.EVALUATE]["metrics"]["roc_auc"] > 0.8
    # The logged params are those of the served model: as many trees as the booster holds.
    booster = chains["spark"]["pipeline"].named_steps["model"].get_booster()
    assert spark[Step.TRAIN]["trees"] == booster.num_boosted_rounds()


def test_the_predictor_serves_the_spark_trained_version_like_the_logged_pipeline(chains) -> None:
    chain = chains["spark"]
    register = chain["results"][Step.REGISTER]
    model_dir = Path(register["serving_uri"])
    example = Model.load(model_dir).load_input_example(model_dir)
    logged = chain["pipeline"].predict_proba(example)[:, 1]
    name = serving_name("telco_engines")
    with predictor(model_dir, name, register["version"], chain["workdir"]) as score:
        served = score(example)
    np.testing.assert_allclose(served, logged, rtol=0, atol=1e-6)
    log = next(chain["workdir"].glob("predictor-*.log")).read_text()
    assert "fast path, ready=True" in log  # its parity check against the Pipeline passed


def test_the_spark_fit_takes_arrow_batches_without_validation_rows(chains) -> None:
    """Above an Arrow batch of rows (10,000 by default) some batches hold training rows only; a
    column per feature made xgboost.spark fail on them (KeyError 'values', seen at 100k rows)."""
    chain = chains["pandas"]
    spec, train = chain["spec"], chain["results"][Step.TRAIN]
    features = dataset.FeatureSet(train["features"]["numeric"], train["features"]["categorical"])

    def labelled(part: pd.DataFrame) -> pd.DataFrame:
        labels = dataset.target_vector(spec, part[spec.columns.target]).astype("float64")
        return part[features.columns].assign(**{spark_fit.LABEL: labels})

    config = spec.model.model_copy(update={"params": {"n_estimators": 20}, "early_stopping_rounds": 5})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(Env.SPARK_MASTER, "local[2]")
        with spark_engine.session("test-small-batches") as session:
            session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "100")
            train_rows, validation_rows = (
                session.createDataFrame(labelled(chain[part])) for part in ("train", "validation")
            )
            fit = spark_fit.fit_model(session, features, config, train_rows, validation_rows, spec.split.seed)
    assert fit.validation_roc_auc > 0.75
