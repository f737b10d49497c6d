"""A rollout you can see: the plot's data follow the checks and the policy, the figure draws them
(weight per step, canary vs stable error rates and p99, thresholds, the decision), and a real
rollout through the operator logs it to the version's MLflow run beside the decision log."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pytest
from mlflow_rest import register_version
from rollout_support import RPS, policy
from rollout_task import PIPELINE, rollout
from support.servers import free_port

from shipyard.rollout import plot
from shipyard.rollout.backends.local import LocalBackend
from shipyard.rollout.controller import PROMOTED, ROLLED_BACK
from shipyard.rollout.local.load import LoadDriver, load_records
from shipyard.rollout.shadow import PLOT_SAMPLE, ShadowMode, judge
from shipyard_spec import load_spec
from shipyard_spec.contract import Env, PushJob
from shipyard_spec.model import Shadow
from shipyard_spec.shadow import Pair

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REASON = "1 failed check(s) reached failure_limit 1: canary error rate 30.00% above max_error_rate 1.00%"


def check(index, at, weight, verdict, error_rate, p99_ms, *, stable_error_rate=0.0, stable_p99_ms=20.0):
    return {
        "index": index, "at": at, "weight": weight, "verdict": verdict, "reason": "", "requests": 40.0,
        "error_rate": error_rate, "p99_ms": p99_ms, "stable_error_rate": stable_error_rate,
        "client_error_rate": 0.0, "stable_client_error_rate": 0.01, "stable_p99_ms": stable_p99_ms,
    }  # fmt: skip


CHECKS = [
    check(0, 1000.0, 20, "inconclusive", None, None, stable_error_rate=None, stable_p99_ms=None),
    check(1, 1001.0, 20, "pass", 0.0, 31.0),
    check(2, 1002.5, 50, "fail", 0.3, 45.0, stable_p99_ms=22.0),
]


def rolled_back() -> plot.RolloutSeries:
    return plot.series(CHECKS, policy(), model="churn", version="7", status=ROLLED_BACK, reason=REASON)


def lines_by_label(figure) -> dict:
    return {line.get_label(): line for ax in figure.axes for line in ax.get_lines()}


def test_the_series_follow_the_checks_and_the_policy():
    data = rolled_back()
    assert data.seconds == [0.0, 1.0, 2.5]
    assert data.weight == [20, 20, 50]
    assert data.verdicts == ["inconclusive", "pass", "fail"]
    assert data.canary_error_rate == [None, 0.0, 0.3]
    assert data.stable_p99_ms == [None, 20.0, 22.0]
    assert (data.max_error_rate, data.max_p99_ms, data.steps) == (0.01, 250, [20, 50, 100])
    assert (data.final_weight, data.decided_at) == (0, 2.5)
    promoted = plot.series(CHECKS[:2], policy(), model="churn", version="7", status=PROMOTED, reason="ok")
    assert (promoted.final_weight, promoted.decided_at) == (100, 1.0)


def test_the_figure_draws_weights_rates_latencies_thresholds_and_the_decision():
    data = rolled_back()
    figure = plot.figure(data)
    lines = lines_by_label(figure)

    assert list(lines["canary weight"].get_ydata()) == [20, 20, 50, 0]  # the rollback ends at 0 %
    assert list(lines["canary weight"].get_xdata()) == [0.0, 1.0, 2.5, 2.5]
    canary_5xx = lines["canary 5xx"].get_ydata()
    assert canary_5xx[0] != canary_5xx[0]  # not measured: a gap (NaN), not a zero
    assert list(canary_5xx[1:]) == [0.0, 0.3]
    assert list(lines["stable p99"].get_ydata()[1:]) == [20.0, 22.0]
    assert list(lines["canary p99"].get_ydata()[1:]) == [31.0, 45.0]
    assert set(lines["max_error_rate"].get_ydata()) == {0.01}
    assert set(lines["max_p99_latency_ms"].get_ydata()) == {250}
    decision = [line for line in figure.axes[0].get_lines() if line.get_label() == "decision: rolled_back"]
    assert [list(line.get_xdata()) for line in decision] == [[2.5, 2.5]]
    assert "churn v7: rolled back" in figure.get_suptitle()
    verdict_markers = {c.get_label(): len(c.get_offsets()) for c in figure.axes[0].collections}
    assert verdict_markers == {"check inconclusive": 1, "check pass": 1, "check fail": 1}
    png = io.BytesIO()
    figure.savefig(png, format="png")
    assert png.getvalue().startswith(PNG_SIGNATURE)


def test_a_rollout_that_ended_before_any_check_is_still_drawn():
    data = plot.series(
        [], policy(), model="churn", version="8", status=ROLLED_BACK, reason="canary failed to start"
    )
    figure = plot.figure(data)
    assert list(lines_by_label(figure)["canary weight"].get_ydata()) == [0]
    assert "no check ran" in [text.get_text() for text in figure.axes[0].texts]


def test_a_shadow_comparison_is_drawn_as_a_score_scatter_beside_its_decision_table():
    """A challenger that flips every decision: every point red, the table's flips off the diagonal."""
    pairs = [Pair(0.1 + 0.8 * i / 999, 0.9 - 0.8 * i / 999) for i in range(1000)]
    check = judge(ShadowMode.REPLAY, pairs, Shadow(), threshold=0.5)
    entry = {"index": 0, "at": 0.0, "weight": 0, **check.as_dict()}
    [picture] = plot.shadow_pictures([entry, *CHECKS], 0.5, model="churn", version="9")

    assert (picture.mode, picture.verdict, picture.name) == ("replay", "fail", "shadow_replay.png")
    assert len(picture.champion) == PLOT_SAMPLE  # a sample: the decision log stays small
    assert picture.figures.decision_table() == [[0, 500], [500, 0]]
    figure = plot.shadow_figure(picture)
    scatter, table = figure.axes
    points = {c.get_label(): len(c.get_offsets()) for c in scatter.collections}
    assert points == {"same decision (0)": 0, "decision flips (500)": PLOT_SAMPLE}
    cells = {(r, c): cell.get_text().get_text() for (r, c), cell in table.tables[0].get_celld().items()}
    assert (cells[(1, 0)], cells[(1, 1)], cells[(2, 0)], cells[(2, 1)]) == ("0", "500", "500", "0")
    assert "decisions flipped 100.0%" in " ".join(t.get_text() for t in table.texts)
    png = io.BytesIO()
    figure.savefig(png, format="png")
    assert png.getvalue().startswith(PNG_SIGNATURE)


@pytest.mark.slow
def test_a_real_rollout_logs_its_plot_to_the_versions_run(
    pipeline, model_dir, mlflow_tracking_uri, monkeypatch
):
    """Promotion under load through execute → trigger → execute_complete, with the Pushgateway down:
    the rollout is not affected, the decision log counts the failed pushes, and the PNG in MLflow is
    the figure of the decision log's checks."""
    from mlflow import MlflowClient

    nobody = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv(Env.PUSHGATEWAY_URL, nobody)
    v1, v2 = (register_version(mlflow_tracking_uri, PIPELINE, model_dir) for _ in range(2))
    rollout(pipeline, v1, model_dir)  # the first release: no canary, nothing to draw
    backend = LocalBackend.for_pipeline(PIPELINE)
    records = load_records(model_dir / "input_example.json")
    with LoadDriver(backend.url, backend.served_name, records, RPS):
        assert rollout(pipeline, v2, model_dir)["status"] == PROMOTED

    client = MlflowClient(mlflow_tracking_uri)
    run_id = client.get_model_version(PIPELINE, v2).run_id
    folder = f"rollout/v{v2}"
    assert {a.path for a in client.list_artifacts(run_id, folder)} == {
        f"{folder}/decision_log.json",
        f"{folder}/rollout.png",
    }
    with tempfile.TemporaryDirectory() as tmp:
        decision_log = json.loads(
            Path(client.download_artifacts(run_id, f"{folder}/decision_log.json", tmp)).read_text()
        )
        logged_png = Path(client.download_artifacts(run_id, f"{folder}/rollout.png", tmp)).read_bytes()
    assert decision_log["metrics_push"] == [
        {"url": nobody, "job": PushJob.ROLLOUT.value, "pushed": 0, "failed": 3}
    ]

    data = plot.series(decision_log["checks"], load_spec(pipeline).rollout, model=PIPELINE, version=v2,
                       status=decision_log["status"], reason=decision_log["reason"])  # fmt: skip
    assert data.weight == [20, 50]
    assert data.verdicts == ["pass", "pass"]
    assert data.final_weight == 100
    assert all(p is not None for p in data.canary_p99_ms + data.stable_p99_ms)
    redrawn = io.BytesIO()
    plot.figure(data).savefig(redrawn, format="png")
    assert logged_png.startswith(PNG_SIGNATURE)
    assert logged_png == redrawn.getvalue()  # the logged picture is the one of these checks
