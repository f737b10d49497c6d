"""Daily drift DAGs (airflow): one per pipeline spec in dags/pipelines/, built by shipyard.drift_dag."""

from __future__ import annotations

from pathlib import Path

from shipyard.drift_dag import build_drift_dag
from shipyard_spec import load_spec

for _spec_path in sorted((Path(__file__).parent / "pipelines").glob("*.yaml")):
    _dag = build_drift_dag(load_spec(_spec_path), str(_spec_path))
    globals()[_dag.dag_id] = _dag
