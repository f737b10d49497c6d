"""Render a drift check three ways: a table for the task log, JSON, and a standalone HTML page.

The HTML embeds one bar chart per feature (reference vs live fractions over the PSI bins)
as base64 PNG, so it is a single file that opens from storage, MLflow or an e-mail.
"""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")  # no display in pods and subprocesses
import matplotlib.pyplot as plt
import numpy as np

from shipyard_pipeline.drift.compare import ColumnDrift


def text_table(drifts: list[ColumnDrift]) -> str:
    """A fixed-width table, one line per feature, drifted ones marked."""
    header = (
        f"{'feature':<22} {'kind':<11} {'PSI':>8} {'limit':>6} {'test':>5} {'stat':>8} {'p-value':>9}  drift"
    )
    lines = [header, "-" * len(header)]
    for d in drifts:
        limit = "-" if d.threshold is None else f"{d.threshold:g}"
        lines.append(
            f"{d.name:<22} {d.kind:<11} {d.psi:>8.4f} {limit:>6} {d.test:>5} "
            f"{d.statistic:>8.4f} {d.p_value:>9.2g}  {'YES' if d.drifted else ''}"
        )
    return "\n".join(lines)


def html_report(summary: dict[str, object], drifts: list[ColumnDrift]) -> str:
    """The page a person opens: verdict, window, counts, then one section per feature."""
    verdict = "DRIFT DETECTED" if summary["drift_detected"] else "no drift"
    reasons = "".join(f"<li>{html.escape(str(r))}</li>" for r in summary["reasons"]) or "<li>none</li>"
    counts = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in summary["counts"].items()
    )
    rows = "".join(
        f"<tr class='{'drifted' if d.drifted else ''}'><td><a href='#{html.escape(d.name)}'>"
        f"{html.escape(d.name)}</a></td><td>{d.kind}</td><td>{d.psi:.4f}</td>"
        f"<td>{'-' if d.threshold is None else d.threshold}</td><td>{d.test}</td>"
        f"<td>{d.statistic:.4f}</td><td>{d.p_value:.3g}</td><td>{'yes' if d.drifted else ''}</td></tr>"
        for d in drifts
    )
    sections = "".join(
        f"<section id='{html.escape(d.name)}'><h3>{html.escape(d.name)}: PSI {d.psi:.4f}</h3>"
        f"<img alt='{html.escape(d.name)} reference vs live' "
        f"src='data:image/png;base64,{_plot(d)}'></section>"
        for d in drifts
    )
    title = f"Drift of {summary['model_name']} v{summary['model_version']}"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}tr.drifted{{background:#fdd}}
section{{display:inline-block;margin:1em}}</style></head><body>
<h1>{html.escape(title)}: {verdict}</h1>
<p>Window [{summary["interval_start"]}, {summary["interval_end"]}),
run {html.escape(str(summary["run_id"]))}</p>
<h2>Reasons</h2><ul>{reasons}</ul>
<h2>Counts</h2><table>{counts}</table>
<h2>Per feature</h2>
<p>PSI over the reference's quantile bins (numeric) or categories; KS / chi-square p-values for reference.</p>
<table><tr><th>feature</th><th>kind</th><th>PSI</th><th>limit</th><th>test</th><th>statistic</th>
<th>p-value</th><th>drift</th></tr>{rows}</table>
{sections}
</body></html>
"""


def _plot(drift: ColumnDrift) -> str:
    figure, axes = plt.subplots(figsize=(5.5, 3.2))
    positions = np.arange(len(drift.bins))
    axes.bar(positions - 0.2, drift.reference_fractions, width=0.4, label="reference (test set)")
    axes.bar(positions + 0.2, drift.live_fractions, width=0.4, label="live window")
    axes.set_xticks(positions, drift.bins, rotation=45, ha="right", fontsize=7)
    axes.set_ylabel("fraction of rows")
    axes.set_title(f"{drift.name} (PSI {drift.psi:.3f})", fontsize=9)
    axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
