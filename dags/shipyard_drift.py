"""Daily drift DAGs (airflow): one per valid pipeline spec in dags/pipelines/, built by shipyard.drift_dag.
Bad specs are reported by shipyard_specs.py."""

from __future__ import annotations

from pathlib import Path

from shipyard.dag_factory import load_pipelines
from shipyard.drift_dag import build_drift_dag

for _spec in load_pipelines(Path(__file__).parent / "pipelines").valid.values():
    _dag = build_drift_dag(_spec)
    globals()[_dag.dag_id] = _dag
