"""The model card: what the model is, what it was trained on, how it did, and whether it may ship."""

from __future__ import annotations

from typing import Any

from shipyard_pipeline.context import RunContext

SHOWN = [
    ("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("log_loss", "log loss"), ("brier", "Brier"),
    ("calibration_error", "calibration error"),
    ("f1", "F1"), ("precision", "precision"), ("recall", "recall"),
]  # fmt: skip


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def model_card(context: RunContext, trained: dict[str, Any], evaluation: dict[str, Any]) -> str:
    spec = context.spec
    champion = evaluation["champion"]
    champion_metrics = champion["metrics"] if champion and champion["metrics"] else {}
    champion_label = f"champion v{champion['version']}" if champion else "champion (none)"
    lines = [
        f"# Model card: {spec.mlflow.registered_model}",
        "",
        spec.description or "",
        "",
        "## Verdict",
        f"**{'Passed all gates' if evaluation['passed'] else 'FAILED a gate'}**, "
        f"decision threshold {evaluation['threshold']:g}.",
        "",
        "| gate | passed | detail |",
        "|---|---|---|",
        *(
            f"| {g['name']} | {'yes' if g['passed'] else '**no**'} | {g['reason']} |"
            for g in evaluation["gates"]
        ),
        "",
        "## Test-set metrics (held-out, newest rows)",
        f"| metric | model | logistic baseline | {champion_label} |",
        "|---|---|---|---|",
        *(
            f"| {label} | {_number(evaluation['metrics'][key])} | {_number(evaluation['baseline'][key])} "
            f"| {_number(champion_metrics.get(key))} |"
            for key, label in SHOWN
        ),
        "",
        "## Data",
        f"- pipeline `{spec.name}`, Airflow run `{context.run_id}`, data interval "
        f"[{context.interval_start.isoformat()}, {context.interval_end.isoformat()})",
        f"- training window: {trained['snapshots']} snapshot(s) {trained['window'][0]} .. "
        f"{trained['window'][1]}, dataset fingerprint `{trained['dataset_fingerprint']}`",
        f"- split ({spec.split.policy}): "
        + ", ".join(f"{part} {trained['rows'][part]} rows" for part in ("train", "validation", "test")),
        f"- target `{spec.columns.target}` = {spec.columns.positive_label!r}; test positive rate "
        f"{evaluation['metrics']['positive_rate']:.3f}",
        f"- features: {len(trained['features']['numeric'])} numeric, "
        f"{len(trained['features']['categorical'])} categorical",
        "",
        "## Model",
        "scikit-learn Pipeline: median imputation + scaling of numerics, constant imputation + one-hot "
        "encoding of categoricals (unseen categories ignored), then XGBoost.",
        "",
        "Parameters: " + ", ".join(f"`{k}={v}`" for k, v in sorted(trained["params"].items())),
        "",
        f"Tuning: {_tuning(trained['tuning'])}. Early stopping and tuning used the validation split only.",
        "",
        "## Slices",
    ]
    for column, report in evaluation["slices"].items():
        if "error" in report:
            lines.append(f"- `{column}`: {report['error']}")
            continue
        lines += [
            f"### `{column}`",
            "| value | rows | positive rate | ROC AUC | recall |",
            "|---|---|---|---|---|",
        ]
        for value, m in report["slices"].items():
            lines.append(
                f"| {value} | {m['rows']} | {m['positive_rate']:.3f} | {_number(m.get('roc_auc'))} "
                f"| {_number(m.get('recall'))} |"
            )
        if report["skipped_below_min_size"]:
            lines.append(
                f"\nSkipped (fewer than {spec.evaluation.min_slice_size} rows): "
                f"{report['skipped_below_min_size']}"
            )
        lines.append("")
    top = sorted(evaluation["feature_importance"].items(), key=lambda item: -item[1])[:10]
    lines += ["## Most important features (gain)", *(f"- `{name}`: {value:.3f}" for name, value in top), ""]
    lines += [
        "## Caveats",
        "- Metrics come from one time-ordered test split; on small data, splits vary by ~0.01 AUC.",
        "- Scores are uncalibrated probabilities: see the calibration plot before reading them as rates.",
        "",
    ]
    return "\n".join(lines)


def _tuning(tuning: dict[str, Any]) -> str:
    if not tuning.get("enabled"):
        return "none (the spec's parameters)"
    return (
        f"{tuning['trials']} Optuna trial(s), validation ROC AUC {tuning['best_validation_roc_auc']:.4f} "
        f"(untuned {tuning['untuned_validation_roc_auc']:.4f})"
    )
