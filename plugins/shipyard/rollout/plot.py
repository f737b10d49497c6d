"""The picture of one rollout: its checks in, a matplotlib figure out. Pure: no I/O, no clock.

Three panels over the seconds since the first check, one point per check: the canary's traffic
weight (a step line, ending at the decision: 100 % promoted, 0 % rolled back); the canary's and
the stable version's server-error (5xx) and client-error (4xx) rates with `max_error_rate`; their
p99 latency with `max_p99_latency_ms`. Each check's verdict is a coloured marker, the decision a
vertical line labelled with its status, and the reason is the title.

`series()` turns the checks of the decision log into the data the figure is drawn from (what the
tests check); `figure()` draws it. A rollout with a shadow comparison gets one more picture per
mode (`shadow_pictures()`, `shadow_figure()`): the challenger's score against the champion's on
the same requests (flipped decisions in red, the decision threshold drawn) beside the decision
table (the champion's decisions by the challenger's) and the verdict. matplotlib is imported
inside the figure functions only (the operator calls them after the decision, on a worker;
never while a DAG file parses), and draws on a bare `Figure` (Agg canvas), without pyplot's
global state. The operator uploads the figures (`MlflowRegistry.upload_figure`).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.rollout.analysis import Verdict
from shipyard.rollout.controller import PROMOTED
from shipyard.rollout.shadow import SHADOW_STAGE_PREFIX, summary
from shipyard_spec.model import Rollout
from shipyard_spec.shadow import Figures

if TYPE_CHECKING:
    from matplotlib.figure import Figure

VERDICT_COLOURS = {
    Verdict.PASS: "tab:green",
    Verdict.FAIL: "tab:red",
    Verdict.INCONCLUSIVE: "tab:gray",
    Verdict.ERROR: "tab:orange",
}
CANARY_COLOUR, STABLE_COLOUR = "tab:purple", "tab:blue"


@dataclass(frozen=True)
class RolloutSeries:
    """What the plot shows, one entry per check (None: not measured in that check)."""

    model: str
    version: str
    status: str  # controller.PROMOTED or ROLLED_BACK
    reason: str
    steps: list[int]
    max_error_rate: float
    max_p99_ms: float
    seconds: list[float]  # since the first check
    weight: list[int]
    verdicts: list[str]
    canary_error_rate: list[float | None]
    stable_error_rate: list[float | None]
    canary_client_error_rate: list[float | None]
    stable_client_error_rate: list[float | None]
    canary_p99_ms: list[float | None]
    stable_p99_ms: list[float | None]

    @property
    def final_weight(self) -> int:
        """The canary's weight after the decision."""
        return 100 if self.status == PROMOTED else 0

    @property
    def decided_at(self) -> float:
        """Where the decision is drawn: the last check (0 when there was none)."""
        return self.seconds[-1] if self.seconds else 0.0


def series(
    checks: list[dict[str, Any]], policy: Rollout, *, model: str, version: str, status: str, reason: str
) -> RolloutSeries:
    """The plot's data from the decision log's checks and the policy that judged them."""
    start = checks[0]["at"] if checks else 0.0

    def column(key: str) -> list[Any]:
        return [check.get(key) for check in checks]

    return RolloutSeries(
        model=model,
        version=version,
        status=status,
        reason=reason,
        steps=list(policy.steps),
        max_error_rate=policy.max_error_rate,
        max_p99_ms=policy.max_p99_latency_ms,
        seconds=[round(check["at"] - start, 3) for check in checks],
        weight=column("weight"),
        verdicts=column("verdict"),
        canary_error_rate=column("error_rate"),
        stable_error_rate=column("stable_error_rate"),
        canary_client_error_rate=column("client_error_rate"),
        stable_client_error_rate=column("stable_client_error_rate"),
        canary_p99_ms=column("p99_ms"),
        stable_p99_ms=column("stable_p99_ms"),
    )


def _nan(values: list[float | None]) -> list[float]:
    """None → NaN, which matplotlib leaves as a gap."""
    return [float("nan") if value is None else float(value) for value in values]


def figure(data: RolloutSeries) -> Figure:
    """The rollout as a three-panel figure (matplotlib, Agg)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 8), layout="constrained")
    weight_ax, errors_ax, latency_ax = fig.subplots(3, 1, sharex=True)
    decided = data.status == PROMOTED
    decision_colour = "tab:green" if decided else "tab:red"
    fig.suptitle(
        textwrap.fill(f"{data.model} v{data.version}: {data.status.replace('_', ' ')} — {data.reason}", 100),
        fontsize=10,
    )

    weight_ax.step(
        [*data.seconds, data.decided_at], [*data.weight, data.final_weight], where="post",
        color=CANARY_COLOUR, marker="o", label="canary weight",
    )  # fmt: skip
    weight_ax.set_ylabel("canary traffic %")
    weight_ax.set_ylim(-5, 105)
    weight_ax.set_yticks(sorted({0, *data.steps}))

    errors_ax.plot(
        data.seconds, _nan(data.canary_error_rate), color=CANARY_COLOUR, marker="o", label="canary 5xx"
    )
    errors_ax.plot(
        data.seconds, _nan(data.stable_error_rate), color=STABLE_COLOUR, marker="o", label="stable 5xx"
    )
    errors_ax.plot(data.seconds, _nan(data.canary_client_error_rate), color=CANARY_COLOUR, linestyle=":",
                   marker=".", label="canary 4xx")  # fmt: skip
    errors_ax.plot(data.seconds, _nan(data.stable_client_error_rate), color=STABLE_COLOUR, linestyle=":",
                   marker=".", label="stable 4xx")  # fmt: skip
    errors_ax.axhline(data.max_error_rate, color="tab:red", linestyle="--", label="max_error_rate")
    errors_ax.set_ylabel("error rate")

    latency_ax.plot(
        data.seconds, _nan(data.canary_p99_ms), color=CANARY_COLOUR, marker="o", label="canary p99"
    )
    latency_ax.plot(
        data.seconds, _nan(data.stable_p99_ms), color=STABLE_COLOUR, marker="o", label="stable p99"
    )
    latency_ax.axhline(data.max_p99_ms, color="tab:red", linestyle="--", label="max_p99_latency_ms")
    latency_ax.set_ylabel("p99 latency (ms)")
    latency_ax.set_xlabel("seconds since the first check")

    for verdict, colour in VERDICT_COLOURS.items():
        at = [t for t, v in zip(data.seconds, data.verdicts, strict=True) if v == verdict]
        if at:
            weight_ax.scatter(
                at, [-2] * len(at), color=colour, marker="s", zorder=3, label=f"check {verdict}"
            )
    for ax in (weight_ax, errors_ax, latency_ax):
        ax.axvline(data.decided_at, color=decision_colour, linewidth=2, label=f"decision: {data.status}")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=7, ncol=2)
    if not data.seconds:
        weight_ax.text(0.5, 0.5, "no check ran", transform=weight_ax.transAxes, ha="center")
    return fig


@dataclass(frozen=True)
class ShadowPicture:
    """One shadow comparison as its plot shows it."""

    model: str
    version: str
    mode: str  # shadow.ShadowMode value
    verdict: str
    reason: str
    threshold: float
    figures: Figures
    champion: list[float]  # the plotted sample of pairs
    challenger: list[float]

    @property
    def name(self) -> str:
        """The artifact's file name beside the rollout plot."""
        return f"shadow_{self.mode}.png"


def shadow_pictures(
    checks: list[dict[str, Any]], threshold: float, *, model: str, version: str
) -> list[ShadowPicture]:
    """The last comparison with figures of each shadow mode in the decision log's checks."""
    fields = set(Figures.__dataclass_fields__)
    last: dict[str, dict[str, Any]] = {}
    for check in checks:
        if str(check.get("stage", "")).startswith(SHADOW_STAGE_PREFIX) and check.get("pairs"):
            last[check["stage"].removeprefix(SHADOW_STAGE_PREFIX)] = check
    return [
        ShadowPicture(
            model=model,
            version=version,
            mode=mode,
            verdict=entry["verdict"],
            reason=entry["reason"],
            threshold=threshold,
            figures=Figures(**{k: v for k, v in entry.items() if k in fields}),
            champion=[pair[0] for pair in entry["pairs"]],
            challenger=[pair[1] for pair in entry["pairs"]],
        )
        for mode, entry in last.items()
    ]


def shadow_figure(picture: ShadowPicture) -> Figure:
    """The scatter of challenger vs champion scores and the decision table (matplotlib, Agg)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.8), layout="constrained")
    scatter_ax, table_ax = fig.subplots(1, 2, width_ratios=[3, 2])
    fig.suptitle(
        textwrap.fill(f"{picture.model} v{picture.version}: shadow {picture.mode} {picture.verdict}", 100),
        fontsize=10,
    )
    t = picture.threshold
    flipped = [(a >= t) != (b >= t) for a, b in zip(picture.champion, picture.challenger, strict=True)]
    for is_flip, colour, label in (
        (False, STABLE_COLOUR, "same decision"),
        (True, "tab:red", "decision flips"),
    ):
        xs = [a for a, f in zip(picture.champion, flipped, strict=True) if f is is_flip]
        ys = [b for b, f in zip(picture.challenger, flipped, strict=True) if f is is_flip]
        scatter_ax.scatter(xs, ys, s=8, alpha=0.6, color=colour, label=f"{label} ({len(xs)})")
    scatter_ax.plot([0, 1], [0, 1], color="gray", linewidth=1, label="same score")
    scatter_ax.axvline(t, color="black", linestyle="--", linewidth=1, label=f"threshold {t:g}")
    scatter_ax.axhline(t, color="black", linestyle="--", linewidth=1)
    scatter_ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="champion score", ylabel="challenger score")
    scatter_ax.set_title(f"{len(picture.champion)} of {picture.figures.rows} pairs", fontsize=9)
    scatter_ax.legend(loc="upper left", fontsize=7)
    scatter_ax.grid(alpha=0.3)

    table_ax.axis("off")
    table = table_ax.table(
        cellText=[[str(n) for n in row] for row in picture.figures.decision_table()],
        rowLabels=[f"champion ≥ {t:g}", f"champion < {t:g}"],
        colLabels=[f"challenger ≥ {t:g}", f"challenger < {t:g}"],
        cellColours=[["white", "mistyrose"], ["mistyrose", "white"]],
        loc="upper center",
    )
    table.scale(1, 1.6)
    table_ax.text(0.5, 0.45, textwrap.fill(summary(picture.figures, t), 48), transform=table_ax.transAxes,
                  ha="center", va="top", fontsize=8)  # fmt: skip
    table_ax.set_title("decisions (flips shaded)", fontsize=9)
    return fig
