"""BENCHMARK BASELINE ONLY: the naive kserve predictor, `pipeline.predict_proba(DataFrame)` per request.

What most custom kserve runtimes for an sklearn Pipeline look like; `run.py` serves it next to
Shipyard's predictor with the same workers, threads and log settings, so the difference
measured is the prediction path alone. No validation, no metrics, no log: not for production.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

import pandas as pd

from kserve import Model, ModelServer, model_server


class NaivePipelineModel(Model):
    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.pipeline: Any = None

    def load(self) -> bool:
        with (self.model_dir / "model.pkl").open("rb") as handle:
            self.pipeline = pickle.load(handle)
        self.ready = True
        return self.ready

    def predict(self, payload: dict, headers: dict[str, str] | None = None) -> dict:
        frame = pd.DataFrame(payload["instances"])
        return {"predictions": self.pipeline.predict_proba(frame)[:, 1].tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_dir", required=True)
    args = parser.parse_args()
    model = NaivePipelineModel(args.model_name, args.model_dir)
    model.load()
    model_server.args.log_config_file = args.log_config_file
    ModelServer(
        http_port=args.http_port,
        workers=args.workers,
        enable_grpc=args.enable_grpc,
        enable_latency_logging=args.enable_latency_logging,
    ).start([model])


if __name__ == "__main__":
    main()
