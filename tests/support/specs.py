"""Pipeline specs the tests derive from the demo's."""

from __future__ import annotations

from pathlib import Path

import yaml

from support.servers import REPO

TELCO = REPO / "dags" / "pipelines" / "telco_churn.yaml"


def spark_pipeline(directory: Path, executors: dict | None = None) -> Path:
    """The Telco pipeline with `engine: spark` (tuning off: the Spark fit does not tune), and the
    spec's own executor settings (`spark.executors`) when given."""
    spec = yaml.safe_load(TELCO.read_text())
    spec["engine"] = "spark"
    if executors is not None:
        spec["spark"] = {"executors": executors}
    spec["model"].setdefault("tuning", {})["enabled"] = False
    path = directory / "telco_churn_spark.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
