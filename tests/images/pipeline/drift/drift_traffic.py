"""Synthetic churn-like traffic: a reference sample and live samples shifted on purpose.

Also imported by tests/dags/drift_seed.py (run in the pipeline venv) for the Airflow test.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

MODEL = "churn"
NUMERIC = ["tenure", "monthly_charges", "senior_citizen"]
CATEGORICAL = ["contract", "internet_service"]
CONTRACTS = ["Month-to-month", "One year", "Two year"]
INTERNET = ["DSL", "Fiber optic", "No"]


def records(
    frame: pd.DataFrame, start: datetime, version: str, model_name: str = MODEL
) -> list[dict[str, object]]:
    """Prediction log records, one a minute from `start`, in the predictor's format."""
    features = frame.drop(columns=["score"])
    return [
        {
            "ts": (start + timedelta(minutes=i)).isoformat(),
            "model_name": model_name,
            "model_version": version,
            "inputs": features.iloc[i].to_dict(),
            "score": float(frame["score"].iloc[i]),
            "id": f"c{i}",
        }
        for i in range(len(frame))
    ]


def traffic(rows: int, seed: int, shift: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Features plus a `score`; `shift` names what to move: features, or "score" alone."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 73, rows).astype(float),
            "monthly_charges": rng.normal(65, 30, rows).clip(18, 120),
            "senior_citizen": (rng.random(rows) < 0.16).astype(float),
            "contract": rng.choice(CONTRACTS, rows, p=[0.55, 0.21, 0.24]),
            "internet_service": rng.choice(INTERNET, rows, p=[0.34, 0.44, 0.22]),
        }
    )
    if "tenure" in shift:
        frame["tenure"] = rng.integers(0, 13, rows).astype(float)  # a wave of brand-new customers
    if "contract" in shift:
        frame["contract"] = rng.choice(CONTRACTS, rows, p=[0.9, 0.05, 0.05])
    logit = -1.0 - 0.04 * (frame["tenure"] - 30) + 0.02 * (frame["monthly_charges"] - 65)
    frame["score"] = 1 / (1 + np.exp(-logit))
    if "score" in shift:
        frame["score"] = frame["score"] ** 0.3  # the model suddenly scores everyone high
    return frame
