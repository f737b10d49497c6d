"""Shipyard's Airflow side: the DAG factory, the step operators and their settings.

Imported by DAG files at parse time, so nothing here imports pandas, scikit-learn, xgboost,
mlflow or kserve; the heavy work runs in the pipeline image (`shipyard-step`).
"""
