"""A real Prometheus server (Debian package `prometheus`, installed by `make prometheus`) for tests."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from support.servers import free_port, stop_process, wait_http_ok


@contextlib.contextmanager
def prometheus_server(
    workdir: Path, targets: list[str], scrape_interval: str = "1s", pushgateway: str | None = None
) -> Iterator[str]:
    """Prometheus scraping `targets` (host:port) every `scrape_interval`, and the Pushgateway
    `pushgateway` (host:port) with `honor_labels` as its documentation asks (the pushed `job` and
    grouping labels are kept); yields its URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError(
            "the prometheus binary is not installed: run `make prometheus` (apt-get install prometheus)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(
        f"global: {{scrape_interval: {scrape_interval}, evaluation_interval: {scrape_interval}}}\n"
        f"scrape_configs:\n  - job_name: predictors\n    static_configs:\n      - targets: {targets}\n"
        + (
            "  - job_name: pushgateway\n    honor_labels: true\n"
            f"    static_configs:\n      - targets: ['{pushgateway}']\n"
            if pushgateway
            else ""
        )
    )
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/-/ready", timeout=30, process=process)
        yield url
    finally:
        stop_process(process, timeout=10)
        log.close()
