"""The Assets that tie Shipyard's DAGs together, in a module cheap to import.

The training DAG file imports this instead of `shipyard.drift_dag`: the `@task` decorator
that module needs costs a DAG file about 25 ms of parse time.
"""

from __future__ import annotations

from airflow.sdk import Asset


def drift_asset(pipeline: str) -> Asset:
    """The Asset whose events mean "the champion of `pipeline` drifted: retrain"."""
    return Asset(uri=f"shipyard://{pipeline}/drift", name=f"{pipeline}_drift")
