"""The Grafana dashboard the chart ships (`charts/shipyard/files/dashboards/shipyard.json`), built
from the contract so that no metric name in it can drift from what the code exports.

Every PromQL expression is written here with `contract.Metric` members only; `make dashboards`
writes the JSON and a chart test checks the file equals what this module builds. Run with the
Airflow virtualenv (it has shipyard_spec):

    .venv/airflow/bin/python tools/dashboards.py [--check]

Panels select the served model with the dashboard variable `model` (values of the predictor's
`model_name`, the same value as the `model` label of the pushed figures) and rate over Grafana's
`$__rate_interval`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard_spec.contract import Metric, MetricLabel, Outcome, ShadowOutcome
from shipyard_spec.model import Drift, Rollout

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "charts" / "shipyard" / "files" / "dashboards" / "shipyard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
MODEL = 'model_name=~"$model"'  # predictor metrics
PUSHED_MODEL = f'{MetricLabel.MODEL}=~"$model"'  # pushed figures
RATE = "$__rate_interval"
BY_VERSION = "model_name, model_version"
VERSION_LEGEND = "{{model_name}} v{{model_version}}"
PUSHED_LEGEND = "{{model}} v{{version}}"


def requests_rate(*matchers: str) -> str:
    selector = ",".join([MODEL, *matchers])
    return f"sum by ({BY_VERSION}) (rate({Metric.REQUESTS}{{{selector}}}[{RATE}]))"


def outcome_share(outcome: Outcome) -> str:
    return f"{requests_rate(f'outcome={json.dumps(outcome.value)}')} / {requests_rate()}"


def latency_quantile(quantile: float) -> str:
    return (
        f"histogram_quantile({quantile}, sum by ({BY_VERSION}, le) "
        f"(rate({Metric.HTTP_REQUEST_DURATION}_bucket{{{MODEL}}}[{RATE}])))"
    )


def pushed(metric: Metric, *by: str, matchers: tuple[str, ...] = ()) -> str:
    """A figure labelled `model`/`version` (pushed, or exported by the mirroring predictor)."""
    labels = ", ".join([MetricLabel.MODEL, *by])
    selector = ",".join([PUSHED_MODEL, *matchers])
    return f"max by ({labels}) ({metric}{{{selector}}})"


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    expr: str
    legend: str
    unit: str
    width: int = 12
    extra: dict[str, Any] = field(default_factory=dict)  # fieldConfig.defaults additions


@dataclass(frozen=True)
class Row:
    title: str
    panels: list[Panel]


def threshold_line(value: float) -> dict[str, Any]:
    return {
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "red", "value": value}],
        },
        "custom": {"thresholdsStyle": {"mode": "line+area"}},
    }


ROWS = [
    Row(
        "Traffic (predictors)",
        [
            Panel(
                "Request rate per version",
                "Prediction requests per second answered by each version (every status).",
                requests_rate(),
                VERSION_LEGEND,
                "reqps",
                width=8,
            ),
            Panel(
                "Server errors (5xx) per version",
                "Share of each version's requests answered with a 5xx.",
                outcome_share(Outcome.SERVER_ERROR),
                VERSION_LEGEND,
                "percentunit",
                width=8,
                extra=threshold_line(Rollout.model_fields["max_error_rate"].default),
            ),
            Panel(
                "Client errors (4xx) per version",
                "Share of each version's requests refused with a 4xx (invalid input, body too large, ...)",
                outcome_share(Outcome.CLIENT_ERROR),
                VERSION_LEGEND,
                "percentunit",
                width=8,
            ),
        ],
    ),
    Row(
        "Latency (whole request at the predictor)",
        [
            Panel(
                "p50 latency per version",
                "Median time of a request as the predictor's HTTP server sees it (body read to answer).",
                latency_quantile(0.5),
                VERSION_LEGEND,
                "s",
            ),
            Panel(
                "p99 latency per version",
                "99th percentile of the same; the canary analysis limits it with rollout.max_p99_latency_ms.",
                latency_quantile(0.99),
                VERSION_LEGEND,
                "s",
                extra=threshold_line(Rollout.model_fields["max_p99_latency_ms"].default / 1000),
            ),
        ],
    ),
    Row(
        "Rollout",
        [
            Panel(
                "Canary weight",
                "Share of the model's traffic on the version under rollout, pushed by the rollout at every "
                "change (100 promoted, 0 rolled back).",
                pushed(Metric.CANARY_WEIGHT, MetricLabel.VERSION),
                PUSHED_LEGEND,
                "percent",
                width=24,
                extra={"min": 0, "max": 100, "custom": {"lineInterpolation": "stepAfter"}},
            ),
        ],
    ),
    Row(
        "Shadow comparison (challenger vs champion on the same requests)",
        [
            Panel(
                "Decision flips",
                "Share of shadow-scored requests whose decision flips at the spec's threshold.",
                pushed(Metric.SHADOW_DECISION_FLIP_RATIO, MetricLabel.VERSION),
                PUSHED_LEGEND,
                "percentunit",
                width=6,
            ),
            Panel(
                "Score difference",
                "Mean and 99th percentile of |challenger score - champion score|.",
                pushed(Metric.SHADOW_SCORE_ABS_DIFF, MetricLabel.VERSION, MetricLabel.STATISTIC),
                "{{model}} v{{version}} {{statistic}}",
                "none",
                width=6,
            ),
            Panel(
                "Score PSI",
                "PSI of the challenger's scores against the champion's on the same requests.",
                pushed(Metric.SHADOW_SCORE_PSI, MetricLabel.VERSION),
                PUSHED_LEGEND,
                "none",
                width=6,
            ),
            Panel(
                "Shadow requests",
                "Requests scored by both versions in the comparison.",
                pushed(
                    Metric.SHADOW_REQUESTS,
                    MetricLabel.VERSION,
                    matchers=(f'{MetricLabel.OUTCOME}="{ShadowOutcome.PAIRED}"',),
                ),
                PUSHED_LEGEND,
                "short",
                width=6,
            ),
        ],
    ),
    Row(
        "Drift (daily check of the champion)",
        [
            Panel(
                "Drift PSI per feature",
                "PSI of each feature's live values against the champion's reference profile, pushed by the "
                "drift step after each check; the line is the default drift.psi_threshold.",
                pushed(Metric.DRIFT_PSI, MetricLabel.FEATURE),
                "{{feature}}",
                "none",
                width=24,
                extra=threshold_line(Drift.model_fields["psi_threshold"].default),
            ),
        ],
    ),
]


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit, "custom": {}}
    for key, value in panel.extra.items():
        defaults[key] = {**defaults.get(key, {}), **value} if isinstance(value, dict) else value
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {"refId": "A", "datasource": DATASOURCE, "expr": panel.expr, "legendFormat": panel.legend}
        ],
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    for row in ROWS:
        panels.append(
            {"id": len(panels) + 1, "type": "row", "title": row.title, "collapsed": False,
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}
        )  # fmt: skip
        y += 1
        x = 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y = 0, y + 8
            panels.append(panel_json(panel, len(panels) + 1, x, y))
            x += panel.width
        y += 8
    return {
        "title": "Shipyard models",
        "uid": "shipyard-models",
        "description": "Predictors, rollouts, shadow comparisons and drift of the Shipyard pipelines.",
        "tags": ["shipyard"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
                {
                    "name": "model",
                    "label": "Model",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "definition": f"label_values({Metric.REQUESTS}, model_name)",
                    "query": {"query": f"label_values({Metric.REQUESTS}, model_name)", "refId": "model"},
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "refresh": 2,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if the shipped JSON is not what this builds"
    )
    args = parser.parse_args(argv)
    if args.check:
        if DASHBOARD.read_text() != render():
            print(f"{DASHBOARD} is stale: run make dashboards", file=sys.stderr)
            return 1
        return 0
    DASHBOARD.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD.write_text(render())
    print(DASHBOARD)
    return 0


if __name__ == "__main__":
    sys.exit(main())
