"""validate and evaluate on the Spark engine (`engine: spark`), `local[2]`, against pandas on the same data.

One storage root, one Airflow run: the run's week arrives corrupt, then fixed; each time it is
validated by the Spark engine (Great Expectations' Spark datasource) and by the pandas engine. Then
one model is trained (pandas) and evaluated by both engines against a champion. The steps run in
process, so the Spark sessions share one JVM. Spark evaluates from a bounded summary of the test
scores (`spark_evaluate`): ROC AUC within the share of same-bin (positive, negative) pairs, the
threshold metrics exact, the other figures within FIGURE_TOLERANCE.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from awkward_source import charges_as_text
from mlflow import MlflowClient
from step_runner import TELCO_SPEC, StepRunner

from shipyard_pipeline import dataset, demo, spark_evaluate
from shipyard_pipeline.validate import REPORT_FILE, RESULT_FILE
from shipyard_spec import load_spec
from shipyard_spec.contract import Alias, Env, ExitCode, Step

pytestmark = pytest.mark.spark

ENGINES = ("pandas", "spark")
WEEKS = 6
FIGURE_TOLERANCE = 1e-3
EXACT = ("f1", "precision", "recall", "accuracy", "positive_rate", "rows")


def write_spec(workdir: Path, engine: str, **changes: Any) -> Path:
    spec = yaml.safe_load(TELCO_SPEC.read_text())
    spec.update(name="telco_checks", engine=engine, **changes)
    spec["training"]["window_intervals"] = WEEKS
    spec["model"] = {"params": {"n_estimators": 60, "max_depth": 3}, "tuning": {"enabled": False}}
    spec["gates"] = {"min_roc_auc": 0.5, "max_baseline_shortfall": 1.0}
    spec["mlflow"] = {"experiment": "telco_checks", "registered_model": "telco_checks"}
    path = workdir / f"telco_checks_{engine}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def runners(specs: dict[str, Path], storage_root: Path, week: tuple[datetime, datetime], run_id: str):
    results = storage_root.parent / f"results-{run_id}"
    results.mkdir(exist_ok=True)
    return {
        engine: StepRunner(spec, storage_root, week[0], week[1], run_id, results)
        for engine, spec in specs.items()
    }


def validation(runner: StepRunner) -> dict[str, Any]:
    outcome = runner(Step.VALIDATE)
    snapshot_dir = (
        runner.storage_root
        / "telco_checks"
        / "snapshots"
        / f"interval_start={runner.start:%Y-%m-%dT%H:%M:%S}"
    )
    return {
        "code": outcome.code,
        "result": outcome.result,
        "stderr": outcome.stderr,
        "report": json.loads((snapshot_dir / RESULT_FILE).read_text()),
        "markdown": (snapshot_dir / REPORT_FILE).read_text(),
        "quarantined": (snapshot_dir / "_QUARANTINED.json").exists(),
    }


def evaluation(runner: StepRunner, client: MlflowClient) -> dict[str, Any]:
    outcome = runner(Step.EVALUATE)
    assert outcome.code == 0, outcome.stderr
    run_id = outcome.result["mlflow_run_id"]
    evaluate_dir = runner.storage_root / "telco_checks" / "runs" / runner.run_id / "evaluate"
    return {
        "result": outcome.result,
        "evaluation": json.loads((evaluate_dir / "evaluation.json").read_text()),
        "artifacts": sorted(a.path for a in client.list_artifacts(run_id, "evaluation")),
        "metrics": client.get_run(run_id).data.metrics,
    }


def bad_week(directory: Path) -> Path:
    """The corrupt demo week (nulls in a non-null column, an out-of-range charge, an unknown
    contract) with `total_charges` arriving as text, e.g. after an upstream export change."""
    return charges_as_text(demo.seed(directory, bad=True), "total_charges")


@pytest.fixture(scope="module")
def checked(
    tmp_path_factory: pytest.TempPathFactory,
    shipyard_home: Path,
    mlflow_tracking_uri: str,
    last_week: tuple[datetime, datetime],
) -> dict[str, Any]:
    """The last week arrives bad: validated (Spark first, so its verdict quarantines), train tried;
    then fixed and re-ingested: validated again, trained, evaluated against a champion."""
    workdir = tmp_path_factory.mktemp("spark-checks")
    source = {"kind": "sql", "url": "sqlite:///${CHECKS_DB}", "table": demo.TABLE}
    specs = {engine: write_spec(workdir, engine, source=source) for engine in ENGINES}
    storage_root = workdir / "storage"
    good, bad = shipyard_home / "data" / "telco_churn.db", bad_week(workdir / "bad")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)
        patch.setenv(Env.SPARK_MASTER, "local[2]")
        patch.setenv("CHECKS_DB", str(good))
        demo.ingest_history(specs["pandas"], str(storage_root), WEEKS - 1, end=last_week[1])
        run = runners(specs, storage_root, last_week, "scheduled__checks")
        patch.setenv("CHECKS_DB", str(bad))
        assert run["pandas"](Step.INGEST).code == 0
        failed = {engine: validation(run[engine]) for engine in reversed(ENGINES)}
        held_back = run["spark"](Step.TRAIN, "--window-intervals", "1", "--skip-tuning")
        patch.setenv("CHECKS_DB", str(good))
        assert run["pandas"](Step.INGEST, "--force").code == 0
        passed = {engine: validation(run[engine]) for engine in reversed(ENGINES)}
        assert run["pandas"](Step.TRAIN, "--skip-tuning").code == 0
        client = MlflowClient()
        first = run["pandas"](Step.EVALUATE)
        assert first.code == 0, first.stderr
        # The trained version, promoted: the evaluations compare it against itself as champion.
        registered = run["pandas"](Step.REGISTER).result
        client.set_registered_model_alias("telco_checks", Alias.CHAMPION, registered["version"])
        evaluated = {engine: evaluation(run[engine], client) for engine in ENGINES}
    split = storage_root / "telco_checks" / "runs" / "scheduled__checks" / "train" / "split"
    return {
        "failed": failed,
        "held_back": held_back,
        "passed": passed,
        "first_evaluation": first.result,
        "evaluated": evaluated,
        "test": pd.read_parquet(split / "test.parquet"),
        "spec": load_spec(specs["pandas"]),
    }


def per_expectation(report: dict[str, Any]) -> dict[tuple[str, str, str], tuple[bool, Any]]:
    """What each expectation found; a column's type is named in each engine's own terms (int64 on
    pandas, LongType on Spark), so only its verdict is compared."""
    found = {}
    for row in report["expectations"]:
        key = (row["expectation"], row["column"], json.dumps(row["arguments"], sort_keys=True))
        typed = row["expectation"] == "expect_column_values_to_be_in_type_list"
        found[key] = (row["success"], None if typed else row["observed"].split(" e.g.")[0])
    return found


def test_a_bad_snapshot_fails_on_spark_as_on_pandas_is_quarantined_and_nothing_trains(checked) -> None:
    pandas, spark = checked["failed"]["pandas"], checked["failed"]["spark"]
    for found in (pandas, spark):
        assert found["code"] == ExitCode.CHECK_FAILED
        assert "failed 4/" in found["stderr"]
        assert found["quarantined"]
        assert found["result"] is None  # nothing for the next task to pick up
        assert "**FAILED**" in found["markdown"]
    assert per_expectation(spark["report"]) == per_expectation(pandas["report"])
    failed = {k[:2] for k, (ok, _) in per_expectation(spark["report"]).items() if not ok}
    assert failed == {
        ("expect_column_values_to_not_be_null", "tenure"),
        ("expect_column_values_to_be_between", "monthly_charges"),
        ("expect_column_values_to_be_in_set", "contract"),
        ("expect_column_values_to_be_in_type_list", "total_charges"),
    }
    # The window of the run's week holds its snapshot only, held back by Spark's verdict.
    assert checked["held_back"].code != 0
    assert "quarantined" in checked["held_back"].stderr


def test_a_fixed_snapshot_passes_on_spark_with_the_pandas_results_and_is_released(checked) -> None:
    pandas, spark = checked["passed"]["pandas"], checked["passed"]["spark"]
    assert spark["code"] == 0, spark["stderr"][-2000:]
    assert spark["result"]["success"]
    assert spark["result"]["quarantined"] is False
    assert not spark["quarantined"]  # Spark's verdict lifted the quarantine
    assert spark["result"]["expectations_evaluated"] == pandas["result"]["expectations_evaluated"] > 60
    assert per_expectation(spark["report"]) == per_expectation(pandas["report"])


def test_evaluate_on_spark_gives_the_pandas_figures_and_decision(checked) -> None:
    spec, test = checked["spec"], checked["test"]
    labels = dataset.target_vector(spec, test[spec.columns.target])
    scores = pandas_scores(checked)
    pandas, spark = checked["evaluated"]["pandas"], checked["evaluated"]["spark"]
    assert spark["result"].keys() == pandas["result"].keys()
    assert spark["evaluation"].keys() == pandas["evaluation"].keys()
    assert spark["artifacts"] == pandas["artifacts"]
    assert spark["metrics"].keys() == pandas["metrics"].keys()
    assert spark["result"]["passed"] == pandas["result"]["passed"]
    assert {name: g["passed"] for name, g in spark["result"]["gates"].items()} == {
        name: g["passed"] for name, g in pandas["result"]["gates"].items()
    }
    assert spark["evaluation"]["champion"]["version"] == pandas["evaluation"]["champion"]["version"]
    everything = np.ones(len(labels), dtype=bool)
    # name: (pandas figures, Spark figures, the test rows they cover when scored by the model)
    figures = {
        "model": (pandas["evaluation"]["metrics"], spark["evaluation"]["metrics"], everything),
        "baseline": (pandas["evaluation"]["baseline"], spark["evaluation"]["baseline"], None),
        "champion (the same model)": (
            pandas["evaluation"]["champion"]["metrics"],
            spark["evaluation"]["champion"]["metrics"],
            everything,
        ),
    }
    for column, report in pandas["evaluation"]["slices"].items():
        theirs = spark["evaluation"]["slices"][column]
        assert theirs["skipped_below_min_size"] == report["skipped_below_min_size"]
        assert theirs["slices"].keys() == report["slices"].keys()
        keys = test[column].astype("string").fillna("__missing__").to_numpy()
        for value, slice_metrics in report["slices"].items():
            figures[f"{column}={value}"] = (slice_metrics, theirs["slices"][value], keys == value)
    for name, (expected, got, rows) in figures.items():
        assert got.keys() == expected.keys(), name
        for metric, value in expected.items():
            if metric in EXACT or value is None:
                assert got[metric] == pytest.approx(value, abs=1e-12), (name, metric)
            elif metric != "roc_auc" or rows is None:
                assert abs(got[metric] - value) <= FIGURE_TOLERANCE, (name, metric, got[metric], value)
            else:
                bound = same_bin_pair_share(labels[rows], scores[rows])
                assert abs(got[metric] - value) <= bound + 1e-12, (name, got[metric], value, bound)
    print(
        f"test ROC AUC pandas {pandas['evaluation']['metrics']['roc_auc']:.6f}, "
        f"spark {spark['evaluation']['metrics']['roc_auc']:.6f}, "
        f"bound {same_bin_pair_share(labels, scores):.2e}"
    )


def pandas_scores(checked) -> np.ndarray:
    """The trained model's scores of every test row, as the pandas engine computes them."""
    import mlflow.sklearn

    trained = checked["evaluated"]["pandas"]["result"]
    model = mlflow.sklearn.load_model(trained["model_uri"])
    return model.predict_proba(checked["test"][list(model.feature_names_in_)])[:, 1]


def same_bin_pair_share(labels: np.ndarray, scores: np.ndarray) -> float:
    """The share of (positive, negative) pairs whose scores share a summary bin: the most the
    summary's ROC AUC can differ from the every-row one."""
    bins = np.minimum(np.floor(scores.astype("float64") * spark_evaluate.BINS), spark_evaluate.BINS - 1)
    frame = pd.DataFrame({"bin": bins, "positive": labels == 1, "negative": labels == 0})
    per_bin = frame.groupby("bin")[["positive", "negative"]].sum()
    return float((per_bin["positive"] * per_bin["negative"]).sum() / (labels.sum() * (1 - labels).sum()))
