"""Write a day of drifted (or clean) prediction logs for the champion, for the drift demo.

Run in the pipeline virtualenv, after a training run has produced a champion, with MLflow
running and the demo's environment set (`make up` in one shell; in another:
`eval "$(.venv/airflow/bin/python scripts/airflow_env.py)"`):

    .venv/pipeline/bin/python scripts/send_drifted_traffic.py --spec dags/pipelines/telco_churn.yaml

MLflow is reached through MLFLOW_TRACKING_URI only: unset or unreachable, the script stops and
says how to start it (it never falls back to a local store that has no champion).

Rows are sampled from the champion's own reference profile (inverse CDF over its quantile
grid, category frequencies), then one numeric feature is pushed to the bottom of its range
and one categorical feature's mix is set to 90% one category; the champion model scores
every row, and the rows land in the prediction log exactly as the predictor writes them
(spread over the last `--hours`). `--clean` skips the shift (a no-drift control).
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd

from shipyard_pipeline.drift.prediction_logs import write_parts
from shipyard_pipeline.drift.profile import ReferenceProfile
from shipyard_pipeline.drift.statistics import MISSING
from shipyard_pipeline.drift.step import find_champion, load_profile
from shipyard_pipeline.errors import StepError
from shipyard_pipeline.tracking import connect
from shipyard_spec import load_spec
from shipyard_spec.contract import Env, default_prediction_log_root, serving_name

START_MLFLOW = (
    "start MLflow on the demo's state with `make up`, then in another shell: "
    'eval "$(.venv/airflow/bin/python scripts/airflow_env.py)"'
)


def sample(
    profile: ReferenceProfile, rows: int, rng: np.random.Generator, numeric: str, category: str, clean: bool
) -> pd.DataFrame:
    """Rows drawn from the reference profile, shifted on `numeric` and `category` unless clean."""
    columns = {}
    for name, ref in profile.numeric.items():
        u = rng.random(rows)
        if name == numeric and not clean:
            u = u**4  # most rows now sit in the lowest quantile bins
        grid = np.linspace(0, 1, len(ref.quantiles))
        values = np.interp(u, grid, ref.quantiles)
        integral = all(float(q).is_integer() for q in ref.quantiles)
        columns[name] = np.round(values) if integral else values
    for name, ref in profile.categorical.items():
        categories = ref.categories
        weights = np.array([ref.counts[c] for c in categories], dtype=float)
        if name == category and not clean:
            weights = np.full(len(categories), 0.1 / max(len(categories) - 1, 1))
            weights[-1] = 0.9  # the least common category becomes the bulk of traffic
            categories = sorted(categories, key=lambda c: ref.counts[c])[::-1]
        columns[name] = rng.choice(categories, rows, p=weights / weights.sum())
    return pd.DataFrame(columns)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", default="dags/pipelines/telco_churn.yaml")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--hours", type=float, default=20, help="spread rows over the last N hours")
    parser.add_argument(
        "--numeric", default=None, help="numeric feature to shift (default: first key feature)"
    )
    parser.add_argument("--category", default=None, help="categorical feature to re-mix")
    parser.add_argument("--clean", action="store_true", help="send undrifted traffic")
    parser.add_argument(
        "--log-root",
        default=None,
        help="default: $SHIPYARD_PREDICTION_LOG_URI, else <storage root>/prediction_logs (where drift reads)",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    spec = load_spec(args.spec)
    name = spec.mlflow.registered_model
    try:
        client = connect()
    except StepError as e:
        raise SystemExit(f"{e}: {START_MLFLOW}") from e
    champion = find_champion(client, name)
    if champion is None:
        uri = os.environ[Env.MLFLOW_TRACKING_URI]
        raise SystemExit(f"no champion for {name!r} in MLflow at {uri} yet: run the training DAG first")
    profile = load_profile(champion)
    keys = spec.drift.key_features or profile.features
    numeric = args.numeric or next(f for f in keys if f in profile.numeric)
    category = args.category or next(f for f in keys if f in profile.categorical)
    frame = sample(profile, args.rows, np.random.default_rng(args.seed), numeric, category, args.clean)
    model = mlflow.sklearn.load_model(f"models:/{name}@champion")
    scores = model.predict_proba(frame)[:, 1]

    now = datetime.now(UTC)
    step = timedelta(hours=args.hours) / args.rows
    inputs = frame.replace({MISSING: None}).to_dict(orient="records")
    records = [
        {
            "ts": (now - timedelta(hours=args.hours) + i * step).isoformat(),
            "model_name": serving_name(spec.name),
            "model_version": champion.version,
            "inputs": row,
            "score": float(score),
            "id": f"demo-{args.seed}-{i}",
        }
        for i, (row, score) in enumerate(zip(inputs, scores, strict=True))
    ]
    home = Path(os.environ.get(Env.HOME, ".shipyard")).resolve()
    storage_root = os.environ.get(Env.STORAGE_ROOT) or str(home / "storage")
    log_root = (
        args.log_root or os.environ.get(Env.PREDICTION_LOG_URI) or default_prediction_log_root(storage_root)
    )
    paths = write_parts(log_root, spec.name, records)
    shifted = "none (clean)" if args.clean else f"{numeric} pushed low, {category} re-mixed"
    print(f"wrote {len(records)} rows for {name} v{champion.version} ({shifted}) to {', '.join(paths)}")


if __name__ == "__main__":
    main()
