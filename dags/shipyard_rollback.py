"""Manual rollback DAGs (airflow): one per pipeline spec in dags/pipelines/, built by shipyard.rollout."""

from __future__ import annotations

from pathlib import Path

from shipyard.rollout.rollback_dag import build_rollback_dag
from shipyard_spec import load_spec

for _spec_path in sorted((Path(__file__).parent / "pipelines").glob("*.yaml")):
    _dag = build_rollback_dag(load_spec(_spec_path))
    globals()[_dag.dag_id] = _dag
