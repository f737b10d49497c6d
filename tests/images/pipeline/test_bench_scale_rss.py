"""`benchmarks/scale/run.py`'s peak RSS is the step's own process tree, not the benchmark's memory.

`ru_maxrss` from `os.wait4` started at the benchmark's own peak (Linux keeps the high-water
mark of the address space a child execs from), so a tiny step reported the benchmark's size;
and it missed the children (a Spark step's JVM and Python workers).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks" / "scale"))

import run  # noqa: E402

MB = 2**20


def test_a_small_step_is_not_charged_with_the_benchmarks_memory(tmp_path: Path) -> None:
    held = bytearray(1024 * MB)
    held[::4096] = b"\1" * len(held[::4096])  # resident, not just reserved
    _, peak_mb = run.run_step(("--help",), [], dict(os.environ), tmp_path / "help.log")
    assert peak_mb < 512, peak_mb  # `shipyard-step --help`, not the 1 GB this process holds
    del held


def test_a_steps_children_count(tmp_path: Path) -> None:
    child = "b = bytearray(300 * 2**20); b[::4096] = b'\\1' * len(b[::4096]); import time; time.sleep(1.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}], check=True)"
    process = subprocess.Popen([sys.executable, "-c", parent])
    with run.TreePeak(process.pid) as tree:
        os.wait4(process.pid, 0)
    assert tree.peak_mb >= 300, tree.peak_mb
