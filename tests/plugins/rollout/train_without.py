"""Train the serving tests' Telco model without some features (a spec that dropped a column).

Runs in the PIPELINE virtualenv, like the script it wraps:

    .venv/pipeline/bin/python tests/plugins/rollout/train_without.py --without FEATURE OUT [--n-estimators N]

The resulting model's signature no longer has FEATURE, so the predictor answers 400 to every
client that still sends it: the breaking release the canary's client-error rule must catch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "serving"))

import train_telco_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--without", action="append", required=True, help="a feature to leave out")
    args, rest = parser.parse_known_args()
    for feature in args.without:
        for features in (train_telco_model.NUMERIC, train_telco_model.CATEGORICAL):
            if feature in features:
                features.remove(feature)
    sys.argv = [sys.argv[0], *rest]
    train_telco_model.main()


if __name__ == "__main__":
    main()
