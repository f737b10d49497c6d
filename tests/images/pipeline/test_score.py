"""Batch scoring (`shipyard-step score`): the champion's scores of an interval, as the predictor serves them.

A small model is trained and registered on a few demo weeks (steps as subprocesses, as the local
runner runs them), made champion, and the interval's snapshot scored twice; the real predictor
(serving virtualenv) then scores the same rows over HTTP.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from predictor_process import predictor
from step_process import run_cli

from shipyard_pipeline import demo, snapshot, storage
from shipyard_spec.contract import PREDICTIONS_DIR, Alias, Env, Step, serving_name

WEEKS = 8


@pytest.fixture(scope="module")
def scored(
    tmp_path_factory: pytest.TempPathFactory,
    shipyard_home: Path,
    telco_spec: Path,
    mlflow_tracking_uri: str,
    last_week: tuple[datetime, datetime],
) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("score")
    spec = yaml.safe_load(telco_spec.read_text())
    spec.update(name="telco_score", scoring={"batch_rows": 64})
    spec["training"]["window_intervals"] = WEEKS
    spec["model"] = {"params": {"n_estimators": 60, "max_depth": 3}, "tuning": {"enabled": False}}
    spec["gates"] = {"min_roc_auc": 0.5, "max_baseline_shortfall": 1.0}
    spec["mlflow"] = {"experiment": "telco_score", "registered_model": "telco_score"}
    spec_path = workdir / "telco_score.yaml"
    spec_path.write_text(yaml.safe_dump(spec))

    start, end = last_week
    storage_root = workdir / "storage"
    demo.ingest_history(spec_path, str(storage_root), WEEKS - 1, end=end)
    common = [
        "--spec", str(spec_path), "--interval-start", start.isoformat(), "--interval-end", end.isoformat(),
        "--run-id", "scheduled__score", "--storage-root", str(storage_root),
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_tracking_uri, "SHIPYARD_HOME": str(shipyard_home)}
    results: dict[str, Any] = {}
    for step in (Step.INGEST, Step.VALIDATE, Step.TRAIN, Step.EVALUATE, Step.REGISTER):
        results[step], _ = run_cli(step, common, workdir, env)
    results["before_champion"], _ = run_cli(Step.SCORE, common, workdir, env)
    version = results[Step.REGISTER]["version"]
    MlflowClient(mlflow_tracking_uri).set_registered_model_alias("telco_score", Alias.CHAMPION, version)
    results["first"], _ = run_cli(Step.SCORE, common, workdir, env)
    first = pd.read_parquet(results["first"]["data_uri"])
    results["again"], _ = run_cli(Step.SCORE, common, workdir, env)
    rows = snapshot.read_published(results[Step.INGEST]["snapshot_uri"]).read()
    features = [*results[Step.TRAIN]["features"]["numeric"], *results[Step.TRAIN]["features"]["categorical"]]
    with predictor(
        Path(results[Step.REGISTER]["serving_uri"]), serving_name("telco_score"), version, workdir
    ) as score:
        served = score(rows[features])
    return {
        "results": results,
        "first": first,
        "rows": rows,
        "served": served,
        "storage_root": storage_root,
        "spec": spec,
        "common": common,
        "env": env,
        "workdir": workdir,
    }


def test_without_a_champion_nothing_is_scored(scored: dict[str, Any]) -> None:
    result = scored["results"]["before_champion"]
    assert (result["status"], result["model_version"]) == ("no_model", None)


def test_batch_scores_are_the_predictors_scores_for_the_same_rows(scored: dict[str, Any]) -> None:
    results, rows = scored["results"], scored["rows"]
    predictions = pd.read_parquet(results["first"]["data_uri"])
    assert predictions["customer_id"].tolist() == rows["customer_id"].tolist()  # every row, in order
    assert len(predictions) == results[Step.INGEST]["rows"] > 64  # several batches
    np.testing.assert_allclose(predictions["score"], scored["served"], rtol=0, atol=1e-6)
    register = results[Step.REGISTER]
    assert set(predictions["model_version"]) == {register["version"]}
    assert set(predictions["mlflow_run_id"]) == {results[Step.TRAIN]["mlflow_run_id"]}


def test_a_rerun_replaces_the_intervals_partition(scored: dict[str, Any], last_week) -> None:
    first, again = scored["results"]["first"], scored["results"]["again"]
    assert again["predictions_uri"] == first["predictions_uri"]
    assert again["content_hash"] == first["content_hash"]
    partitions = storage.list_dirs(str(scored["storage_root"] / "telco_score" / PREDICTIONS_DIR))
    assert partitions == [f"interval_start={last_week[0]:%Y-%m-%dT%H:%M:%S}"]
    pd.testing.assert_frame_equal(pd.read_parquet(again["data_uri"]), scored["first"])


@pytest.mark.spark
def test_the_spark_engine_publishes_the_same_partition_as_pandas(scored: dict[str, Any]) -> None:
    workdir = scored["workdir"]
    spec_path = workdir / "telco_score_spark.yaml"
    spec_path.write_text(yaml.safe_dump({**scored["spec"], "engine": "spark"}))
    common = [spec_path if c.endswith("telco_score.yaml") else c for c in scored["common"]]
    env = {**scored["env"], Env.SPARK_MASTER: "local[2]"}
    result, _ = run_cli(Step.SCORE, [str(c) for c in common], workdir, env)
    pandas_result = scored["results"]["first"]
    assert (result["engine"], result["predictions_uri"]) == ("spark", pandas_result["predictions_uri"])
    spark_scores = pd.read_parquet(result["data_uri"])
    np.testing.assert_allclose(spark_scores["score"], scored["served"], rtol=0, atol=1e-6)
    pd.testing.assert_frame_equal(spark_scores, scored["first"])
    assert result["content_hash"] == pandas_result["content_hash"]
