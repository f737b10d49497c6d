"""Canary rollout with automatic rollback, bound to the MLflow registry.

One controller (`controller.CanaryController`) moves traffic step by step through a backend
(`backends.local` for the embedded default, `backends.kserve` for an InferenceService), judges
each step with a metrics provider (`providers`) and the pure `analysis.evaluate()`, and
records every check. In Airflow the loop runs in a trigger (`trigger.CanaryAnalysisTrigger`)
so no worker slot is held while the canary runs. Light dependencies only: the standard
library, httpx, the cncf.kubernetes provider, and mlflow-skinny through `shipyard.hooks.mlflow`
(imported inside its methods, never while a DAG file parses).
"""
