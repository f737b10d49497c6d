"""The training window, the split and the fit: pure functions checked on small synthetic data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard_pipeline import dataset, snapshot
from shipyard_pipeline.errors import CheckFailed
from shipyard_pipeline.fitting import Data, fit_model
from shipyard_pipeline.modeling import build_pipeline
from shipyard_spec import load_spec
from shipyard_spec.model import ModelConfig

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
WEEK = timedelta(weeks=1)


def publish_week(root: Path, start: datetime, rows: int = 3) -> None:
    frame = pd.DataFrame({"x": range(rows)})
    manifest = {
        "interval_start": start.isoformat(),
        "interval_end": (start + WEEK).isoformat(),
        "rows": rows,
        "content_hash": snapshot.content_hash(frame),
    }
    snapshot.publish(str(root / f"interval_start={start:%Y-%m-%dT%H:%M:%S}"), frame, manifest)


def test_window_holds_the_last_n_intervals_and_nothing_from_the_future(tmp_path: Path) -> None:
    for week in range(6):
        publish_week(tmp_path, MONDAY + week * WEEK)
    chosen = dataset.window_snapshots(str(tmp_path), MONDAY + 3 * WEEK, MONDAY + 4 * WEEK, intervals=3)
    assert [s.interval_start for s in chosen] == [MONDAY + 1 * WEEK, MONDAY + 2 * WEEK, MONDAY + 3 * WEEK]


def test_window_without_snapshots_says_to_ingest(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="run ingest first"):
        dataset.window_snapshots(str(tmp_path), MONDAY, MONDAY + WEEK, intervals=4)


@pytest.fixture
def spec(telco_spec: Path):
    return load_spec(telco_spec)


def churn_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, rows)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], rows)
    risk = -0.05 * tenure + np.where(contract == "Month-to-month", 1.5, -0.5) + rng.normal(0, 1, rows)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(rows)],
            "event_time": pd.Timestamp("2026-01-05", tz="UTC")
            + pd.to_timedelta(rng.permutation(rows), unit="h"),
            "tenure": tenure,
            "contract": contract,
            "churn": np.where(risk > 0, "Yes", "No"),
        }
    )


def test_time_split_puts_the_oldest_rows_in_train_and_the_newest_in_test(spec) -> None:
    parts = dataset.split(spec, churn_frame(1000))
    assert parts.train["event_time"].max() <= parts.validation["event_time"].min()
    assert parts.validation["event_time"].max() <= parts.test["event_time"].min()
    assert (len(parts.train), len(parts.validation), len(parts.test)) == (650, 150, 200)


def test_a_split_with_one_class_is_refused(spec) -> None:
    frame = churn_frame(400).assign(churn="No")
    with pytest.raises(CheckFailed, match="only target class"):
        dataset.split(spec, frame)


@pytest.mark.parametrize(
    ("values", "label", "expected"),
    [
        (pd.Series(["Yes", "No", "Yes"]), "Yes", [1, 0, 1]),
        (pd.Series([1, 0, 1]), 1, [1, 0, 1]),
        (pd.Series([1.0, 0.0, 1.0]), 1, [1, 0, 1]),
        (pd.Series([True, False, True]), True, [1, 0, 1]),
    ],
)
def test_target_vector_matches_the_positive_label(spec, values, label, expected) -> None:
    spec = spec.model_copy(update={"columns": spec.columns.model_copy(update={"positive_label": label})})
    assert dataset.target_vector(spec, values).tolist() == expected


def fit_data(spec) -> tuple[dataset.FeatureSet, Data]:
    parts = dataset.split(spec, churn_frame(1500))
    features = dataset.FeatureSet(["tenure"], ["contract"])
    return features, Data(
        parts.train[features.columns],
        dataset.target_vector(spec, parts.train["churn"]),
        parts.validation[features.columns],
        dataset.target_vector(spec, parts.validation["churn"]),
    )


def test_early_stopping_leaves_a_plain_pipeline_with_the_best_number_of_trees(spec) -> None:
    features, data = fit_data(spec)
    config = ModelConfig(params={"n_estimators": 500, "learning_rate": 0.3}, early_stopping_rounds=10)
    fit = fit_model(features, config, data, tune=False, seed=1)
    model = fit.pipeline.named_steps["model"]
    assert [name for name, _ in fit.pipeline.steps] == ["preprocess", "model"]
    assert fit.trees is not None
    assert fit.trees < 500
    assert model.n_estimators == fit.trees == fit.params["n_estimators"]
    assert model.get_params()["early_stopping_rounds"] is None
    assert model.get_booster().num_boosted_rounds() == fit.trees
    assert fit.validation_roc_auc > 0.75


def test_tuning_is_bounded_and_never_worse_than_the_spec_params_on_validation(spec) -> None:
    features, data = fit_data(spec)
    config = ModelConfig(
        params={"n_estimators": 100}, early_stopping_rounds=10, tuning={"enabled": True, "max_trials": 3}
    )
    fit = fit_model(features, config, data, tune=True, seed=1)
    assert fit.tuning["trials"] == 3
    assert fit.tuning["best_validation_roc_auc"] >= fit.tuning["untuned_validation_roc_auc"]


def test_rows_in_two_overlapping_snapshots_are_kept_once(tmp_path: Path, spec) -> None:
    rows = churn_frame(10)
    snapshot.publish(str(tmp_path / "wide"), rows, {"interval_start": "a", "content_hash": "1"})
    snapshot.publish(str(tmp_path / "week"), rows.tail(4), {"interval_start": "b", "content_hash": "2"})
    published = [snapshot.read_published(str(tmp_path / name)) for name in ("wide", "week")]
    assert len(dataset.load(spec, published)) == 10


def test_without_early_stopping_triggering_the_model_is_fitted_once_and_carries_no_stopping_state(
    spec, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xgboost import XGBClassifier

    fits = []
    plain_fit = XGBClassifier.fit
    monkeypatch.setattr(
        XGBClassifier, "fit", lambda self, *a, **k: fits.append(1) or plain_fit(self, *a, **k)
    )
    features, data = fit_data(spec)
    # 30 slow trees: the validation loss still falls at the last one, so early stopping never triggers.
    config = ModelConfig(params={"n_estimators": 30, "learning_rate": 0.02}, early_stopping_rounds=10)
    fit = fit_model(features, config, data, tune=False, seed=1)
    model = fit.pipeline.named_steps["model"]
    assert len(fits) == 1
    assert fit.trees == 30 == model.get_booster().num_boosted_rounds()
    assert model.get_params()["early_stopping_rounds"] is None
    assert not hasattr(model, "evals_result_")
    assert model.get_booster().attributes() == {}
    refit = build_pipeline(features.numeric, features.categorical, fit.params).fit(data.x_train, data.y_train)
    assert np.array_equal(
        fit.pipeline.predict_proba(data.x_validation), refit.predict_proba(data.x_validation)
    )


def test_signature_from_a_bounded_sample_equals_the_whole_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard_pipeline import model_artifact

    monkeypatch.setattr(model_artifact, "SAMPLE_ROWS", 50)
    rows = 400
    frame = pd.DataFrame(
        {
            "tenure": np.arange(rows),
            "charges": np.where(np.arange(rows) < 300, np.nan, 1.5),  # missing in every sampled row
            "contract": [None] * 350 + ["One year"] * 50,
        }
    )
    sample = model_artifact.bounded_sample(frame, 50)
    assert len(sample) == 52
    assert model_artifact.bounded_sample(frame.head(40), 50).equals(frame.head(40))
    pipeline = build_pipeline(["tenure", "charges"], ["contract"], {"n_estimators": 2})
    pipeline.fit(frame, np.arange(rows) % 2)
    signature = model_artifact.model_kwargs(pipeline, frame)["signature"]
    monkeypatch.setattr(model_artifact, "SAMPLE_ROWS", rows)
    assert signature == model_artifact.model_kwargs(pipeline, frame)["signature"]
    assert signature.inputs.input_types()[2].name == "string"


def test_the_baseline_is_fitted_on_a_bounded_seeded_sample_of_the_train_split(tmp_path: Path, spec) -> None:
    """Evaluate's logistic baseline reads at most BASELINE_ROWS rows of the train split and only the
    columns it needs: the whole part when smaller; else the same seeded rows on every run (a retried
    evaluate computes the same baseline)."""
    from shipyard_pipeline.context import RunContext
    from shipyard_pipeline.train import read_split_sample, split_uri

    context = RunContext(spec, MONDAY, MONDAY + WEEK, "run-1", str(tmp_path))
    frame = churn_frame(500).assign(unused=1.0)
    uri = Path(split_uri(context, "train"))
    uri.parent.mkdir(parents=True)
    frame.to_parquet(uri)
    columns = [c for c in frame.columns if c != "unused"]

    whole = read_split_sample(context, "train", columns, 500, seed=7)
    pd.testing.assert_frame_equal(whole, frame[columns])
    sample = read_split_sample(context, "train", columns, 100, seed=7)
    assert list(sample.columns) == columns
    assert len(sample) == 100
    assert sample["customer_id"].is_unique
    assert set(sample["customer_id"]) <= set(frame["customer_id"])
    pd.testing.assert_frame_equal(sample, read_split_sample(context, "train", columns, 100, seed=7))
    assert not sample.equals(read_split_sample(context, "train", columns, 100, seed=8))
