"""evaluate: score the trained model on the held-out test split and decide whether it may ship.

Gates (spec `gates`), each recorded with its value and threshold:
- `min_roc_auc`: the test ROC AUC must reach an absolute floor;
- `baseline`: it must not fall more than `max_baseline_shortfall` below a logistic
  regression fitted on the same training split (at most `modeling.BASELINE_ROWS` of its rows, a
  seeded sample; a model that loses to the simple one should not ship);
- `champion`: it must not fall more than `max_champion_regression` below the current
  `champion` scored on the SAME test rows (passes when there is no champion yet).
The spec's engine scores the test split (`engines.Engine.test_scores`): every row in the step
process on pandas; on Spark the executors score it and hand back a bounded summary from which
the same metrics, slices and plots are computed (`spark_evaluate`).
Everything (metrics, slices, plots, model card) is logged to the train run in MLflow and
written under `{root}/{pipeline}/runs/{run_id}/evaluate/` before a failed gate raises
`CheckFailed` (exit 3).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from mlflow import MlflowClient
from mlflow.entities import Metric

from shipyard_pipeline import dataset, engines, metrics, plots, storage, tracking
from shipyard_pipeline.context import RunContext
from shipyard_pipeline.errors import CheckFailed
from shipyard_pipeline.metrics import Scorer
from shipyard_pipeline.model_card import model_card
from shipyard_pipeline.modeling import BASELINE_ROWS, build_baseline
from shipyard_pipeline.train import read_split_sample, split_uri
from shipyard_spec.contract import Alias, Step, Tag

log = logging.getLogger(__name__)

# The scorers of the test set (`metrics.TestScores.curves`).
MODEL, BASELINE, CHAMPION = "model", "baseline", "champion"


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    value: float | None
    threshold: float | None
    reason: str


@dataclass(frozen=True)
class Champion:
    version: str
    run_id: str
    scorer: Scorer | None  # None: it cannot score the test set (see note)
    note: str = ""


def load_champion(client: MlflowClient, name: str, test_columns: list[str]) -> Champion | None:
    """The current champion, to score the test rows; None when no version holds the alias."""
    import mlflow.sklearn

    version = tracking.version_by_alias(client, name, Alias.CHAMPION)
    if version is None:
        return None
    model = mlflow.sklearn.load_model(f"models:/{name}@{Alias.CHAMPION}")
    needed = list(getattr(model, "feature_names_in_", test_columns))
    missing = [c for c in needed if c not in test_columns]
    if missing:
        note = (
            f"champion v{version.version} needs column(s) {missing} absent from the test set: not comparable"
        )
        return Champion(version.version, version.run_id, None, note)
    return Champion(version.version, version.run_id, Scorer(model, needed))


def parquet_columns(uri: str) -> list[str]:
    fs, path = storage.filesystem(uri)
    with fs.open(path, "rb") as handle:
        return pq.read_schema(handle).names


def gates(
    spec_gates: Any,
    model_auc: float,
    baseline_auc: float,
    champion: Champion | None,
    champion_auc: float | None,
) -> list[Gate]:
    floor = spec_gates.min_roc_auc
    baseline_floor = baseline_auc - spec_gates.max_baseline_shortfall
    result = [
        Gate(
            "min_roc_auc",
            model_auc >= floor,
            model_auc,
            floor,
            f"test ROC AUC {model_auc:.4f} vs floor {floor:.4f}",
        ),
        Gate(
            "baseline",
            model_auc >= baseline_floor,
            model_auc,
            baseline_floor,
            f"test ROC AUC {model_auc:.4f} vs logistic baseline {baseline_auc:.4f} "
            f"- tolerance {spec_gates.max_baseline_shortfall:.4f}",
        ),
    ]
    if champion is None:
        result.append(Gate("champion", True, model_auc, None, "no champion yet: the first model passes"))
    elif champion_auc is None:
        result.append(Gate("champion", True, model_auc, None, champion.note))
    else:
        champion_floor = champion_auc - spec_gates.max_champion_regression
        result.append(
            Gate(
                "champion",
                model_auc >= champion_floor,
                model_auc,
                champion_floor,
                f"test ROC AUC {model_auc:.4f} vs champion v{champion.version} {champion_auc:.4f} "
                "on the same rows "
                f"- tolerance {spec_gates.max_champion_regression:.4f}",
            )
        )
    return result


def run(context: RunContext) -> dict[str, Any]:
    import mlflow.sklearn

    spec = context.spec
    client = tracking.connect()
    trained = context.read_step_result(Step.TRAIN)
    numeric, categorical = trained["features"]["numeric"], trained["features"]["categorical"]
    columns = [*numeric, *categorical]
    # The baseline is a yardstick, not the model: a bounded sample fits it as well as millions of
    # rows would, and keeps the step's memory flat on either engine (the Spark driver included).
    target = spec.columns.target
    train = read_split_sample(context, "train", [*columns, target], BASELINE_ROWS, spec.split.seed)
    test_uri = split_uri(context, "test")
    threshold = spec.evaluation.threshold

    model = mlflow.sklearn.load_model(trained["model_uri"])
    baseline = build_baseline(numeric, categorical).fit(
        train[columns], dataset.target_vector(spec, train[target])
    )
    champion = load_champion(client, spec.mlflow.registered_model, parquet_columns(test_uri))
    scorers = {MODEL: Scorer(model, columns), BASELINE: Scorer(baseline, columns)}
    if champion is not None and champion.scorer is not None:
        scorers[CHAMPION] = champion.scorer
    scored = engines.engine(context, Step.EVALUATE).test_scores(test_uri, scorers, spec)

    test_metrics = metrics.classification(scored.curves[MODEL], threshold)
    baseline_metrics = metrics.classification(scored.curves[BASELINE], threshold)
    champion_metrics = (
        metrics.classification(scored.curves[CHAMPION], threshold) if CHAMPION in scored.curves else None
    )
    checks = gates(
        spec.gates,
        test_metrics["roc_auc"],
        baseline_metrics["roc_auc"],
        champion,
        champion_metrics["roc_auc"] if champion_metrics else None,
    )
    passed = all(g.passed for g in checks)
    slice_report = metrics.slices(
        scored.slice_values,
        scored.curves[MODEL],
        spec.evaluation.slices,
        threshold,
        spec.evaluation.min_slice_size,
    )
    importance = metrics.feature_importance(model, numeric, categorical)
    log.info(
        "test ROC AUC %.4f, logistic baseline %.4f, champion %s: gates %s",
        test_metrics["roc_auc"],
        baseline_metrics["roc_auc"],
        f"{champion_metrics['roc_auc']:.4f}" if champion_metrics else "none",
        "passed" if passed else "FAILED",
    )
    evaluation = {
        "passed": passed,
        "threshold": threshold,
        "metrics": test_metrics,
        "baseline": baseline_metrics,
        "champion": (
            None
            if champion is None
            else {
                "version": champion.version,
                "run_id": champion.run_id,
                "metrics": champion_metrics,
                "note": champion.note,
            }
        ),
        "gates": [asdict(g) for g in checks],
        "slices": slice_report,
        "feature_importance": importance,
    }
    card = model_card(context, trained, evaluation)

    run_id = trained["mlflow_run_id"]
    out = context.step_dir(Step.EVALUATE)
    storage.write_json(storage.join(out, "evaluation.json"), evaluation)
    storage.write_text(storage.join(out, "model_card.md"), card)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        names = {MODEL: "model", BASELINE: "logistic baseline"}
        if champion is not None:
            names[CHAMPION] = f"champion v{champion.version}"
        curves = {names[name]: curve for name, curve in scored.curves.items()}
        plots.roc(curves, folder / "roc.png")
        plots.precision_recall(curves, folder / "precision_recall.png")
        plots.calibration(scored.curves[MODEL], folder / "calibration.png")
        plots.confusion(scored.curves[MODEL], threshold, folder / "confusion_matrix.png")
        plots.feature_importance(importance, folder / "feature_importance.png")
        (folder / "model_card.md").write_text(card)
        (folder / "evaluation.json").write_text(json.dumps(evaluation, indent=2, default=str))
        client.log_artifacts(run_id, tmp, artifact_path="evaluation")
    logged = {f"test_{k}": v for k, v in test_metrics.items()}
    logged |= {f"baseline_test_{k}": v for k, v in baseline_metrics.items()}
    if champion_metrics:
        logged |= {f"champion_test_{k}": v for k, v in champion_metrics.items()}
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in logged.items()])
    client.set_tag(run_id, Tag.GATES_PASSED, str(passed).lower())

    result = {
        "passed": passed,
        "metrics": {
            k: test_metrics[k] for k in ("roc_auc", "pr_auc", "log_loss", "f1", "precision", "recall")
        },
        "baseline_roc_auc": baseline_metrics["roc_auc"],
        "champion_roc_auc": champion_metrics["roc_auc"] if champion_metrics else None,
        "champion_version": champion.version if champion else None,
        "gates": {g.name: {"passed": g.passed, "reason": g.reason} for g in checks},
        "model_uri": trained["model_uri"],
        "model_card_uri": storage.join(out, "model_card.md"),
        "evaluation_uri": storage.join(out, "evaluation.json"),
        "mlflow_run_id": run_id,
        "mlflow_run_url": trained["mlflow_run_url"],
    }
    if not passed:
        failed = [g.reason for g in checks if not g.passed]
        storage.write_json(context.step_result_uri(Step.EVALUATE), result)
        raise CheckFailed(f"model {trained['model_uri']} failed gate(s): " + "; ".join(failed))
    return result
