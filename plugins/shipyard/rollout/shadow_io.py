"""What the shadow comparison reads: the champion's logged requests, the live shadow's paired log,
late labels, and the challenger's answers. Standard library, fsspec, httpx and SQLAlchemy only
(Airflow side: no pandas, no numpy).

Logs are read with `prediction_log.newest_records` (the one reader of the contract's log layout).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from shipyard.rollout.prediction_log import newest_records
from shipyard.rollout.shadow import ShadowError, ShadowRejected
from shipyard_spec.contract import REPLAY_HEADER, PredictionRecord, ShadowRecord
from shipyard_spec.model import LabelsSource
from shipyard_spec.shadow import Pair

log = logging.getLogger(__name__)

LABEL_QUERY_CHUNK = 500


@dataclass(frozen=True)
class LoggedRequest:
    """One logged row of the champion: what the client sent and what the champion answered."""

    inputs: dict[str, Any]
    score: float
    id: str | None = None


def read_logged_requests(log_dir: str, version: str, since: datetime, limit: int) -> list[LoggedRequest]:
    """The newest `limit` rows the champion (`version`) logged under `log_dir` since `since`: the
    sample the replay shadow sends to the challenger. Rows of other versions are left out."""
    rows: list[LoggedRequest] = []
    try:
        for record in newest_records(log_dir, PredictionRecord.TS, since):
            if len(rows) >= limit:
                break
            if str(record.get(PredictionRecord.MODEL_VERSION)) != version:
                continue
            try:
                rows.append(_logged_request(record))
            except (KeyError, TypeError, ValueError) as e:
                log.warning("skipping a malformed record of %s: %s", log_dir, e)
    except OSError as e:
        raise ShadowError(f"cannot read the prediction log {log_dir}: {e}") from e
    return rows


def _logged_request(record: dict[str, Any]) -> LoggedRequest:
    record_id = record.get(PredictionRecord.ID)
    inputs = record[PredictionRecord.INPUTS]
    if not isinstance(inputs, dict):
        raise TypeError(f"inputs is {type(inputs).__name__}, not an object")
    return LoggedRequest(
        inputs, float(record[PredictionRecord.SCORE]), None if record_id is None else str(record_id)
    )


def _paired(record: dict[str, Any]) -> tuple[Pair, str | None]:
    record_id = record.get(ShadowRecord.ID)
    champion, challenger = record[ShadowRecord.CHAMPION_SCORE], record[ShadowRecord.CHALLENGER_SCORE]
    return Pair(float(champion), float(challenger)), None if record_id is None else str(record_id)


def read_paired_log(shadow_dir: str, since: datetime) -> list[tuple[Pair, str | None]]:
    """The live shadow's pairs written under `shadow_dir` since `since`, each with its client row id."""
    pairs = []
    try:
        for record in newest_records(shadow_dir, ShadowRecord.TS, since):
            try:
                pairs.append(_paired(record))
            except (KeyError, TypeError, ValueError) as e:
                log.warning("skipping a malformed record of %s: %s", shadow_dir, e)
    except OSError as e:
        raise ShadowError(f"cannot read the shadow log {shadow_dir}: {e}") from e
    return pairs


def read_labels(source: LabelsSource, positive_label: object, ids: list[str]) -> dict[str, bool]:
    """{id: label is positive} for the ids that have a label in the spec's labels table
    (`${VAR}` in its URL expanded, as the drift step does)."""
    import sqlalchemy as sa

    wanted = sorted(set(ids))
    if not wanted:
        return {}
    engine = sa.create_engine(os.path.expandvars(source.url))
    table = sa.table(source.table, sa.column(source.id_column), sa.column(source.label_column))
    labels: dict[str, bool] = {}
    try:
        with engine.connect() as connection:
            for start in range(0, len(wanted), LABEL_QUERY_CHUNK):
                chunk = wanted[start : start + LABEL_QUERY_CHUNK]
                query = sa.select(table.c[source.id_column], table.c[source.label_column]).where(
                    sa.cast(table.c[source.id_column], sa.String).in_(chunk)
                )
                for row_id, label in connection.execute(query):
                    labels[str(row_id)] = str(label) == str(positive_label)
    except sa.exc.SQLAlchemyError as e:
        raise ShadowError(f"cannot read labels from {source.table}: {e.__class__.__name__}: {e}") from e
    finally:
        engine.dispose()
    return labels


def score_rows(
    base_url: str, model_name: str, rows: list[dict[str, Any]], batch_size: int, timeout: float
) -> list[float]:
    """The challenger's scores of `rows` (V1 `:predict`, `batch_size` rows a request). A 4xx means
    the challenger refuses requests the champion answered (`ShadowRejected`); a 5xx or no answer
    is an error of the comparison (`ShadowError`)."""
    url = f"{base_url.rstrip('/')}/v1/models/{model_name}:predict"
    scores: list[float] = []
    with httpx.Client(timeout=timeout, headers={REPLAY_HEADER: "1"}) as client:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            try:
                response = client.post(url, json={"instances": batch})
            except httpx.HTTPError as e:
                raise ShadowError(f"challenger at {url} did not answer: {e.__class__.__name__}: {e}") from e
            if 400 <= response.status_code < 500:
                raise ShadowRejected(
                    f"the challenger refused logged requests the champion answered: HTTP "
                    f"{response.status_code} {response.text[:300]}"
                )
            if response.status_code != 200:
                raise ShadowError(
                    f"challenger at {url} answered HTTP {response.status_code}: {response.text[:300]}"
                )
            try:
                predictions = [float(p) for p in response.json()["predictions"]]
            except (ValueError, KeyError, TypeError) as e:
                raise ShadowError(
                    f"challenger at {url} answered no predictions: {response.text[:300]}"
                ) from e
            if len(predictions) != len(batch):
                raise ShadowError(
                    f"challenger at {url} answered {len(predictions)} predictions for {len(batch)} rows"
                )
            scores.extend(predictions)
    return scores
