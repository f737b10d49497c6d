"""Live ROC AUC once ground truth arrives: labels joined to the logged scores by id."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sklearn.metrics import roc_auc_score

from shipyard_spec.model import LabelsSource


@dataclass(frozen=True)
class LiveAuc:
    """The champion's AUC over the labelled part of the window (None when it cannot be computed)."""

    auc: float | None
    labelled_rows: int
    note: str


def read_labels(source: LabelsSource, positive_label: object) -> pd.DataFrame:
    """`id` and a boolean `label` for every row of the labels table (`${VAR}` in the URL expanded)."""
    engine = sa.create_engine(os.path.expandvars(source.url))
    try:
        table = sa.table(source.table, sa.column(source.id_column), sa.column(source.label_column))
        query = sa.select(table.c[source.id_column].label("id"), table.c[source.label_column].label("label"))
        with engine.connect() as connection:
            frame = pd.read_sql(query, connection)
    finally:
        engine.dispose()
    frame["id"] = frame["id"].astype(str)
    frame["label"] = frame["label"].astype(str) == str(positive_label)
    return frame


def live_auc(window: pd.DataFrame, labels: pd.DataFrame, min_rows: int) -> LiveAuc:
    """AUC of the window's scores against the labels that match its ids."""
    logged = window.dropna(subset=["id"]).assign(id=lambda f: f["id"].astype(str))
    joined = logged.merge(labels, on="id", how="inner")
    if len(joined) < min_rows:
        return LiveAuc(
            None, len(joined), f"{len(joined)} labelled rows, fewer than drift.min_rows={min_rows}"
        )
    if joined["label"].nunique() < 2:
        return LiveAuc(None, len(joined), "labelled rows hold only one class")
    auc = float(roc_auc_score(joined["label"], joined["score"]))
    return LiveAuc(auc, len(joined), f"{len(joined)} labelled rows")
