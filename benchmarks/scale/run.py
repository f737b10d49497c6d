"""Scale benchmark: wall time and peak RSS of each pipeline step as the data grows.

    make bench-scale                                   # N = 10k, 100k, 1M
    .venv/pipeline/bin/python benchmarks/scale/run.py --sizes 10000 100000 [--large]

For each N, writes a Telco-like table of N rows (generate.py) into a SQLite source like the
demo's, then runs ingest → validate → train (`--skip-tuning`) → evaluate → register → score (the
registered version made champion) as `shipyard-step` subprocesses in the pipeline virtualenv,
against a real MLflow server started as the tests start it, over one interval holding all 26
weeks (a window of one interval).
Each step's wall time includes interpreter start; its peak RSS is the summed RSS of the step
process and its children, sampled every 0.1 s (`TreePeak`). Prints the table, then
the growth exponent per step: the slope of log(wall time) and log(peak RSS) against log(N)
between consecutive sizes.
`--steps ingest` stops after ingest (each step needs the ones before it).
`--engine spark` runs the same steps on the Spark engine (its JVM and Python workers are children
of the step process, so in its peak RSS).
`--large` adds 5M and 20M rows (about 10 GB of RAM at 5M; 20M does not fit in 24 GB today).
The machine's cores are shared: the load average is printed with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import write_source  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from support.servers import mlflow_server  # noqa: E402

from shipyard_pipeline import demo  # noqa: E402
from shipyard_spec.contract import Alias  # noqa: E402

SPEC = REPO / "dags/pipelines/telco_churn.yaml"
SHIPYARD_STEP = Path(sys.executable).with_name("shipyard-step")
# Imported once before any step is timed, so no step pays for a cold page cache of the libraries.
WARM_UP = "import great_expectations, mlflow, pandas, sklearn, xgboost, shipyard_pipeline.train"
STEPS = [("ingest",), ("validate",), ("train", "--skip-tuning"), ("evaluate",), ("register",), ("score",)]
SIZES = [10_000, 100_000, 1_000_000]
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
LARGE = [5_000_000, 20_000_000]


@dataclass(frozen=True)
class Measure:
    rows: int
    step: str
    seconds: float
    peak_rss_mb: float
    load: float  # 1-minute load average when the step ended


def spec_for(source: Path, rows: int, workdir: Path, engine: str) -> Path:
    """The demo spec reading `source` on `engine`, one training interval, names of its own."""
    spec = yaml.safe_load(SPEC.read_text())
    name = f"scale_{rows}"
    spec.update(name=name, rollout=None, engine=engine)
    spec["model"]["tuning"]["enabled"] = False  # train runs --skip-tuning; the Spark engine never tunes
    spec["source"]["url"] = f"sqlite:///{source.resolve()}"
    spec["training"]["window_intervals"] = 1
    spec["mlflow"] = {"experiment": name, "registered_model": name}
    spec["expectations"]["row_count"] = {"min": 50}
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in spec.items() if v is not None}))
    return path


def run_step(step: tuple[str, ...], common: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one step process; raises if it fails."""
    with log.open("wb") as output:
        started = time.monotonic()
        command = [str(SHIPYARD_STEP), step[0], *common, *step[1:]]
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        with TreePeak(process.pid) as tree:
            _, status, _ = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{step[0]} exited {process.returncode} (log {log}):\n{tail}")
    return seconds, tree.peak_mb


class TreePeak:
    """The largest summed RSS of a process and its descendants, sampled from /proc every 0.1 s.

    Not `ru_maxrss` from `os.wait4`: Linux starts a child's high-water mark at exec from the
    address space it replaces, which after subprocess's vfork is this benchmark's own (the
    generated source in memory), so every step reported at least this process's peak (register
    at 1M: 1,153 MB). And it counts one process: a Spark step's JVM and Python workers run
    beside its driver, seen only summed over the tree."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_mb = pid, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(0.1):
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))


def tree_rss_mb(root: int) -> float:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat, statm = (entry / "stat").read_text(), (entry / "statm").read_text()
        except OSError:  # the process ended between the listing and the read: it holds no memory
            continue
        pid, ppid = int(entry.name), int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(statm.split()[1]) * PAGE_BYTES
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += rss.get(pid, 0)
        pending += children.get(pid, [])
    return total / 2**20


def step_result(run_dir: Path, rows: int, step: str) -> Path:
    return run_dir / "storage" / f"scale_{rows}" / "runs" / f"bench_scale__{rows}" / step / "result.json"


def measure(
    rows: int, workdir: Path, tracking_uri: str, steps: list[tuple[str, ...]], engine: str
) -> list[Measure]:
    end = demo.last_monday()
    start = end - timedelta(weeks=demo.WEEKS)
    print(f"N = {rows:,}: writing the source ...", flush=True)
    source = write_source(workdir / "sources" / f"telco-{rows}-{end:%Y%m%d}.db", rows, end)
    run_dir = Path(tempfile.mkdtemp(prefix=f"run-{rows}-", dir=workdir))
    spec = spec_for(source, rows, run_dir, engine)
    common = [
        "--spec", str(spec), "--interval-start", start.isoformat(), "--interval-end", end.isoformat(),
        "--run-id", f"bench_scale__{rows}", "--storage-root", str(run_dir / "storage"),
        "--result-path", str(run_dir / "result.json"),
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONUNBUFFERED": "1"}
    measures = []
    for step in steps:
        if step[0] == "score":  # batch scoring scores with the champion: the version just registered
            register = json.loads(step_result(run_dir, rows, "register").read_text())
            MlflowClient(tracking_uri).set_registered_model_alias(
                f"scale_{rows}", Alias.CHAMPION, register["version"]
            )
        seconds, rss = run_step(step, common, env, run_dir / f"{step[0]}.log")
        measures.append(Measure(rows, step[0], seconds, rss, os.getloadavg()[0]))
        print(f"  {step[0]:<9} {seconds:7.1f} s  {rss:7,.0f} MB  (load {measures[-1].load:.1f})", flush=True)
    train_result = step_result(run_dir, rows, "train")
    if not train_result.exists():
        return measures
    train = json.loads(train_result.read_text())
    print(f"  trees {train['trees']}, validation ROC AUC {train['validation_roc_auc']:.4f}", flush=True)
    return measures


def exponents(measures: list[Measure], step: str) -> list[tuple[int, int, float, float]]:
    """(N1, N2, time exponent, RSS exponent) between consecutive sizes for one step."""
    rows = sorted((m for m in measures if m.step == step), key=lambda m: m.rows)
    return [
        (
            a.rows,
            b.rows,
            math.log(b.seconds / a.seconds) / math.log(b.rows / a.rows),
            math.log(b.peak_rss_mb / a.peak_rss_mb) / math.log(b.rows / a.rows),
        )
        for a, b in itertools.pairwise(rows)
    ]


def report(measures: list[Measure], steps: list[str]) -> None:
    sizes = sorted({m.rows for m in measures})
    by = {(m.rows, m.step): m for m in measures}
    print("\nwall time (s, incl. interpreter start) / peak RSS (MB) per step process:\n")
    print("| N | " + " | ".join(steps) + " | load (1 min) |")
    print("|---|" + "---|" * (len(steps) + 1))
    for n in sizes:
        cells = [f"{by[n, s].seconds:.1f} s / {by[n, s].peak_rss_mb:,.0f} MB" for s in steps]
        loads = [by[n, s].load for s in steps]
        print(f"| {n:,} | " + " | ".join(cells) + f" | {min(loads):.1f} to {max(loads):.1f} |")
    if len(sizes) > 1:
        print("\ngrowth exponent (slope of log value vs log N; 1 = linear), time / RSS:\n")
        print("| step | " + " | ".join(f"{a:,} → {b:,}" for a, b in itertools.pairwise(sizes)) + " |")
        print("|---|" + "---|" * (len(sizes) - 1))
        for step in steps:
            cells = [f"{t:.2f} / {r:.2f}" for _, _, t, r in exponents(measures, step)]
            print(f"| {step} | " + " | ".join(cells) + " |")


def start_mlflow(stack: contextlib.ExitStack, workdir: Path, attempts: int = 3) -> str:
    """A real MLflow server as the tests start one; on a loaded machine its first start may take
    longer than the tests' 90 s wait, so it is tried again (a fresh store each time)."""

    def start() -> str:
        return stack.enter_context(mlflow_server(Path(tempfile.mkdtemp(prefix="mlflow-", dir=workdir))))

    for _ in range(attempts - 1):
        try:
            return start()
        except TimeoutError as e:
            print(f"MLflow server not up ({e}); trying again", flush=True)
    return start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=SIZES, help="row counts (default: 10k 100k 1M)"
    )
    parser.add_argument("--large", action="store_true", help="add 5M and 20M rows")
    parser.add_argument(
        "--steps", nargs="+", choices=[s[0] for s in STEPS], help="the first steps only (default: all)"
    )
    parser.add_argument(
        "--engine",
        choices=["pandas", "spark"],
        default="pandas",
        help="the spec's engine (spark: make spark; master SHIPYARD_SPARK_MASTER, default local[*])",
    )
    parser.add_argument("--workdir", type=Path, default=REPO / ".shipyard/bench/scale")
    args = parser.parse_args()
    sizes = sorted({*args.sizes, *(LARGE if args.large else [])})
    args.workdir.mkdir(parents=True, exist_ok=True)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"engine {args.engine}, cores {os.cpu_count()}, load average {load}")
    subprocess.run([sys.executable, "-c", WARM_UP], check=True, capture_output=True)
    steps = STEPS[: max(i for i, s in enumerate(STEPS) if s[0] in args.steps) + 1] if args.steps else STEPS
    measures: list[Measure] = []
    with contextlib.ExitStack() as stack:
        tracking_uri = start_mlflow(stack, args.workdir)
        for rows in sizes:
            measures += measure(rows, args.workdir, tracking_uri, steps, args.engine)
    report(measures, [s[0] for s in steps])


if __name__ == "__main__":
    main()
