"""Training DAGs (airflow): one per pipeline spec in dags/pipelines/, built by shipyard.dag_factory,
with the canary rollout (shipyard.rollout) after register."""

from __future__ import annotations

from pathlib import Path

from shipyard.dag_factory import build_training_dags
from shipyard.rollout.dag import append_rollout

globals().update(
    build_training_dags(
        sorted((Path(__file__).parent / "pipelines").glob("*.yaml")), after_register=[append_rollout]
    )
)
