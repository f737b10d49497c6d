"""The Shipyard predictor: one registered model version behind the kserve V1 and V2 protocols.

`load()` reads the model directory, compiles the numpy fast path, proves it against the
Pipeline on the stored input example (else serves the exact pandas path and says so) and
answers a warm-up prediction before `ready` is set. `preprocess` validates the request
against the signature (client mistakes are 400s) and counts values outside the training
range, `predict` scores it. The time inside the model is observed here; every request's
outcome and whole duration are counted at the front door (server.py, metrics.py).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from kserve.model import InferenceVerb
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from kserve import Model
from shipyard_serving import metrics
from shipyard_serving.fast_path import FastPath, UnsupportedPipeline
from shipyard_serving.faults import Faults
from shipyard_serving.mirror import ShadowMirror
from shipyard_serving.model_dir import ModelDirectory, read_model_dir
from shipyard_serving.prediction_log import PredictionLog
from shipyard_serving.requests import Batch, RequestDecoder
from shipyard_serving.training_range import OutOfRangeMonitor, TrainingRange
from shipyard_spec.contract import REPLAY_HEADER

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-6
OUTPUT_NAME = "probability"


def is_replay(headers: dict[str, str] | None) -> bool:
    """The request carries `contract.REPLAY_HEADER` (kserve hands the predictor the request's
    headers with lower-case names)."""
    return headers is not None and REPLAY_HEADER in headers


@dataclass(frozen=True)
class Settings:
    model_dir: str
    model_version: str = "unknown"
    max_batch_size: int = 1000
    nthread: int = 1
    fast_path: bool = True


class ShipyardModel(Model):
    def __init__(
        self,
        name: str,
        settings: Settings,
        prediction_log: PredictionLog | None = None,
        faults: Faults | None = None,
        mirror: ShadowMirror | None = None,
    ):
        super().__init__(name)
        self.settings = settings
        self.model_version = settings.model_version
        self.prediction_log = prediction_log
        self.faults = faults or Faults()
        self.mirror = mirror
        self.pipeline: Any = None
        self.decoder: RequestDecoder | None = None
        self.fast: FastPath | None = None
        self.out_of_range: OutOfRangeMonitor | None = None

    @property
    def path(self) -> str:
        """Which prediction path serves requests: 'fast' (numpy) or 'exact' (the Pipeline on pandas)."""
        return "fast" if self.fast is not None else "exact"

    def load(self) -> bool:
        directory = read_model_dir(self.settings.model_dir)
        self.pipeline = directory.pipeline
        self.pipeline.named_steps["model"].set_params(n_jobs=self.settings.nthread)
        self.decoder = RequestDecoder(directory.features, self.settings.max_batch_size)
        example = self.decoder.from_v1({"inputs": directory.input_example})
        self.fast = self._proven_fast_path(directory, example) if self.settings.fast_path else None
        self.score(example)  # warm-up: the first request must not pay for lazy initialisation
        training = TrainingRange.of(self.pipeline, directory.numeric)
        if training is None:
            log.warning(
                "no training range in %s (no fitted StandardScaler): values are not range-checked",
                directory.path,
            )
        else:
            self.out_of_range = OutOfRangeMonitor(training, self.name, self.model_version)
        metrics.for_model(self.name, self.model_version)
        self.ready = not self.faults.never_ready
        log.info(
            "loaded %s version %s from %s: %d features, %s path, ready=%s%s",
            self.name,
            self.model_version,
            directory.path,
            len(directory.features),
            self.path,
            self.ready,
            f" (FAULT INJECTION ACTIVE: {self.faults})" if self.faults.active else "",
        )
        return self.ready

    def _proven_fast_path(self, directory: ModelDirectory, example: Batch) -> FastPath | None:
        """The compiled path if it matches the Pipeline on the input example within 1e-6, else None."""
        try:
            fast = FastPath(self.pipeline, directory.numeric, directory.categorical)
        except UnsupportedPipeline as e:
            log.warning("fast path refused for %s: %s; serving the exact (pandas) path", directory.path, e)
            return None
        gap = float(np.max(np.abs(fast.predict(example.numeric, example.categorical) - self.exact(example))))
        if not gap <= PARITY_TOLERANCE:
            log.warning(
                "fast path refused for %s: max |Δp| %.3g on the input example exceeds %g; serving exact path",
                directory.path,
                gap,
                PARITY_TOLERANCE,
            )
            return None
        return fast

    def exact(self, batch: Batch) -> np.ndarray:
        """The training Pipeline on a DataFrame built as training saw it (NaN numbers, None strings)."""
        columns = {name: batch.numeric[:, j] for j, name in enumerate(batch.numeric_names)}
        columns |= {name: pd.Series(values, dtype=object) for name, values in batch.categorical.items()}
        frame = pd.DataFrame(columns)[[f.name for f in self.decoder.features]]
        return self.pipeline.predict_proba(frame)[:, 1]

    def score(self, batch: Batch) -> np.ndarray:
        if self.fast is not None:
            return self.fast.predict(batch.numeric, batch.categorical)
        return self.exact(batch)

    async def __call__(
        self, body: Any, headers: dict[str, str] | None = None, verb: InferenceVerb = InferenceVerb.PREDICT
    ) -> Any:
        """kserve's preprocess → predict → postprocess, timed per model version (the time inside the
        model; outcomes and the whole request are counted at the front door, metrics.py)."""
        start = time.perf_counter()
        try:
            if self.faults.active:
                await self.faults.inject(self.name)
            return await super().__call__(body, headers, verb)
        finally:
            metrics.for_model(self.name, self.model_version).duration.observe(time.perf_counter() - start)

    def preprocess(
        self, payload: dict | InferRequest | bytes, headers: dict[str, str] | None = None
    ) -> Batch:
        batch = self.decoder.decode(payload)
        if self.out_of_range is not None:
            self.out_of_range.observe(batch.numeric)
        return batch

    def predict(self, payload: Batch, headers: dict[str, str] | None = None) -> dict | InferResponse:
        scores = self.score(payload)
        if not is_replay(headers):  # a copy of client traffic is answered, never logged or mirrored
            if self.prediction_log is not None:
                self.prediction_log.record(payload, scores)
            if self.mirror is not None:
                self.mirror.submit(payload, scores)
        if not payload.is_v2:
            return {"predictions": scores.tolist()}
        output = InferOutput(OUTPUT_NAME, [payload.rows], "FP64", data=scores.tolist())
        return InferResponse(
            response_id=payload.v2_request_id or str(uuid.uuid4()),
            model_name=self.name,
            model_version=self.model_version,
            infer_outputs=[output],
        )

    def stop(self) -> None:
        if self.prediction_log is not None:
            self.prediction_log.close()
        if self.mirror is not None:
            self.mirror.close()
        super().stop()
