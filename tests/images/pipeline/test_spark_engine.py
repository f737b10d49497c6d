"""The Spark engine's fit (`engine: spark`) on the Telco demo data, `local[2]`, against the pandas fit.

Same data, split and params on both engines: the preprocessing fitted from Spark aggregates
transforms like scikit-learn's fit, the AUCs agree within AUC_TOLERANCE (XGBoost's distributed
histogram sketch and row order differ from the single-process fit, so the boosters are not
identical), and the Spark-trained Pipeline is served by the real predictor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from predictor_process import predictor
from sklearn.metrics import roc_auc_score

from shipyard_pipeline import dataset, demo
from shipyard_pipeline.fitting import Data, fit_model
from shipyard_pipeline.model_artifact import save_model_dir
from shipyard_spec import load_spec
from shipyard_spec.contract import Env

pytest.importorskip("pyspark")  # make spark (make test-pipeline installs it)

AUC_TOLERANCE = 0.01
TREES = 150


@pytest.fixture(scope="module")
def fits(shipyard_home: Path, telco_spec: Path) -> dict[str, Any]:
    from shipyard_pipeline.spark_fit import fit_model_on_spark

    spec = load_spec(telco_spec)
    engine = sa.create_engine(f"sqlite:///{shipyard_home / demo.DATABASE}")
    frame = pd.read_sql_table(demo.TABLE, engine)
    engine.dispose()
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    features = dataset.resolve_features(spec, frame)
    parts = dataset.split(spec, frame)
    target = spec.columns.target
    data = Data(
        parts.train[features.columns],
        dataset.target_vector(spec, parts.train[target]),
        parts.validation[features.columns],
        dataset.target_vector(spec, parts.validation[target]),
    )
    config = spec.model.model_copy(update={"params": {**spec.model.params, "n_estimators": TREES}})
    pandas_fit = fit_model(features, config, data, tune=False, seed=spec.split.seed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(Env.SPARK_MASTER, "local[2]")
        spark_fit = fit_model_on_spark(features, config, data, seed=spec.split.seed)
    return {
        "pandas": pandas_fit,
        "spark": spark_fit,
        "data": data,
        "x_test": parts.test[features.columns],
        "y_test": dataset.target_vector(spec, parts.test[target]),
    }


def test_preprocessing_fitted_from_spark_aggregates_transforms_like_scikit_learns_fit(fits) -> None:
    data = fits["data"]
    from_spark = fits["spark"].pipeline.named_steps["preprocess"]
    from_pandas = fits["pandas"].pipeline.named_steps["preprocess"]
    for rows in (data.x_train, fits["x_test"]):
        np.testing.assert_allclose(from_spark.transform(rows), from_pandas.transform(rows), rtol=0, atol=1e-9)


def test_spark_and_pandas_fits_agree_on_auc(fits) -> None:
    def test_auc(fit) -> float:
        return roc_auc_score(fits["y_test"], fit.pipeline.predict_proba(fits["x_test"])[:, 1])

    spark_fit, pandas_fit = fits["spark"], fits["pandas"]
    assert abs(spark_fit.validation_roc_auc - pandas_fit.validation_roc_auc) <= AUC_TOLERANCE
    assert abs(test_auc(spark_fit) - test_auc(pandas_fit)) <= AUC_TOLERANCE
    assert test_auc(spark_fit) > 0.8
    assert (
        spark_fit.params["n_estimators"]
        == spark_fit.pipeline.named_steps["model"].get_booster().num_boosted_rounds()
    )


def test_the_predictor_serves_the_spark_trained_pipeline(fits, tmp_path: Path) -> None:
    pipeline = fits["spark"].pipeline
    model_dir = save_model_dir(pipeline, fits["data"].x_train, tmp_path / "model")
    rows = fits["x_test"].head(200)
    with predictor(model_dir, "telco-spark", "1", tmp_path) as score:
        served = score(rows)
    np.testing.assert_allclose(served, pipeline.predict_proba(rows)[:, 1], rtol=0, atol=1e-6)
    log = next(tmp_path.glob("predictor-*.log")).read_text()
    assert "fast path, ready=True" in log  # its parity check against the Pipeline passed
