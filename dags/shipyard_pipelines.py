"""Training DAGs (airflow): one per valid pipeline spec in dags/pipelines/, built by shipyard.dag_factory,
with the canary rollout (shipyard.rollout) after register. Bad specs are reported by shipyard_specs.py."""

from __future__ import annotations

from pathlib import Path

from shipyard.dag_factory import build_training_dags, load_pipelines
from shipyard.rollout.dag import append_rollout

globals().update(
    build_training_dags(
        load_pipelines(Path(__file__).parent / "pipelines").valid, after_register=[append_rollout]
    )
)
