"""Seed a champion and a window of prediction logs for tests/dags/test_drift_dag.py.

Runs in the PIPELINE virtualenv (mlflow, pandas), called by the Airflow-side test as a
subprocess: registers a model version whose run carries a reference profile, points the
`champion` alias at it, and writes 400 logged predictions starting at --start.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from mlflow import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "images" / "pipeline" / "drift"))
from drift_traffic import CATEGORICAL, NUMERIC, records, traffic

from shipyard_pipeline.drift.prediction_logs import write_parts
from shipyard_pipeline.drift.profile import PROFILE_ARTIFACT, build_reference_profile


def seed_champion(client: MlflowClient, model_name: str) -> str:
    if client.search_registered_models(f"name='{model_name}'"):
        return client.get_model_version_by_alias(model_name, "champion").version
    reference = traffic(2000, seed=1)
    profile = build_reference_profile(reference, reference["score"].to_numpy(), NUMERIC, CATEGORICAL, bins=10)
    run = client.create_run(client.create_experiment(model_name))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / PROFILE_ARTIFACT
        path.write_text(json.dumps(profile.to_dict()))
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id)
    client.create_registered_model(model_name)
    version = client.create_model_version(model_name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(model_name, "champion", version.version)
    return version.version


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--log-root", required=True)
    parser.add_argument("--start", required=True, type=datetime.fromisoformat)
    parser.add_argument("--shift", default="", help="comma-separated features to shift")
    args = parser.parse_args()
    version = seed_champion(MlflowClient(), args.model_name)
    frame = traffic(
        400, seed=int(args.start.timestamp()) % 1000, shift=frozenset(filter(None, args.shift.split(",")))
    )
    write_parts(args.log_root, args.model_name, records(frame, args.start, version, args.model_name))


if __name__ == "__main__":
    main()
