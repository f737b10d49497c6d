"""Requests clients really sent, replayed against a predictor before it gets any traffic.

Two jobs, nothing else:

- `sample_logged_requests(spec, limit, version)`: the inputs of the newest records of the
  pipeline's prediction log (the predictor's sampled log, `contract.prediction_log_dir` of
  the served name, read where the predictors write: `SHIPYARD_PREDICTION_LOG_URI`, else
  `{storage root}/prediction_logs`), newest part files first, optionally only the rows a
  given version answered — the predictor logs only requests it answered, so those are
  requests that version accepted. Parts that do not parse are skipped and counted.
- `send(url, model_name, rows)`: each row as one V1 predict request (`{"instances": [row]}`)
  to a predictor; one `Answer` per row (status, and the predictions or the error message),
  so a rejected row can be named.

Used by the signature compatibility gate (`controller`: a row the champion answers and the
challenger rejects stops the rollout). Light on the Airflow side: stdlib, httpx, fsspec
(imported when called).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import httpx

from shipyard.rollout.prediction_log import newest_records
from shipyard_spec.contract import (
    REPLAY_HEADER,
    Env,
    PredictionRecord,
    default_prediction_log_root,
    prediction_log_dir,
    serving_name,
)
from shipyard_spec.model import PipelineSpec

log = logging.getLogger(__name__)

# Part files opened at most per sample: a log of many small parts is not read whole for a gate.
MAX_PARTS_READ = 50
REQUEST_TIMEOUT_SECONDS = 10


def missing_as_none(row: dict[str, Any]) -> dict[str, Any]:
    """NaN (how MLflow writes a missing value into input_example.json) → None (JSON null)."""
    return {key: None if isinstance(v, float) and math.isnan(v) else v for key, v in row.items()}


def log_root() -> str:
    """Where the predictors log: `SHIPYARD_PREDICTION_LOG_URI`, else `{storage root}/prediction_logs`."""
    from shipyard.settings import storage_root

    return os.environ.get(Env.PREDICTION_LOG_URI) or default_prediction_log_root(storage_root())


def sample_logged_requests(
    spec: PipelineSpec, limit: int, version: str | None = None, root: str | None = None
) -> list[dict[str, Any]]:
    """Up to `limit` request rows (`{feature: value}`, missing values as None) from the newest
    parts of the pipeline's prediction log; only rows answered by `version` when given.
    No log yet → []. A storage error is raised (OSError): the caller decides what it means."""
    directory = prediction_log_dir(root or log_root(), serving_name(spec.name))
    rows: list[dict[str, Any]] = []
    for record in newest_records(directory, PredictionRecord.TS, max_parts=MAX_PARTS_READ):
        if len(rows) >= limit:
            break
        inputs = record.get(PredictionRecord.INPUTS)
        if not isinstance(inputs, dict):
            continue
        if version is None or str(record.get(PredictionRecord.MODEL_VERSION)) == version:
            rows.append(missing_as_none(inputs))
    log.info(
        "%d logged request(s) of %s from %s",
        len(rows),
        f"v{version}" if version else "any version",
        directory,
    )
    return rows


@dataclass(frozen=True)
class Answer:
    """A predictor's answer to one replayed row: HTTP status (None: no answer) and body."""

    status: int | None
    body: Any  # the JSON answer (predictions or {"error": ...}), or the transport error's text

    @property
    def ok(self) -> bool:
        return self.status == httpx.codes.OK

    @property
    def rejected(self) -> bool:
        """A client error: the predictor refused the request itself."""
        return self.status is not None and 400 <= self.status < 500

    def message(self) -> str:
        if isinstance(self.body, dict) and "error" in self.body:
            return str(self.body["error"])
        return str(self.body)


def predict_url(base_url: str, model_name: str) -> str:
    """The V1 predict endpoint of a predictor serving `model_name` at `base_url`."""
    return f"{base_url.rstrip('/')}/v1/models/{model_name}:predict"


def send(
    url: str, model_name: str, rows: list[dict[str, Any]], timeout: float = REQUEST_TIMEOUT_SECONDS
) -> list[Answer]:
    """Each row as one V1 predict request to the predictor at `url`; the answers in row order.
    A predictor that does not answer one request (refused, unresolvable, timed out) is not sent
    the rest: each remaining row gets the same no-answer, so an unreachable predictor (a
    NetworkPolicy that drops packets) costs one timeout, not one per row."""
    endpoint = predict_url(url, model_name)
    answers: list[Answer] = []
    with httpx.Client(timeout=timeout, headers={REPLAY_HEADER: "1"}) as client:
        for row in rows:
            try:
                response = client.post(endpoint, json={"instances": [row]})
            except httpx.HTTPError as e:
                unanswered = Answer(None, f"{type(e).__name__}: {e}")
                log.warning("replay: %s did not answer (%s); its other %d row(s) not sent",
                            endpoint, unanswered.body, len(rows) - len(answers) - 1)  # fmt: skip
                return answers + [unanswered] * (len(rows) - len(answers))
            try:
                body = response.json()
            except ValueError:
                body = response.text
            answers.append(Answer(response.status_code, body))
    return answers
