"""The test split scored on Spark, summarised for evaluate without collecting its rows.

The executors read the test split, and `mapInPandas` hands each Arrow batch to the same
`metrics.Scorer`s (the fitted Pipelines, pickled with the function) and to the same pandas
functions for the 0/1 label (`dataset.target_vector`) and the slice keys (`metrics.slice_keys`).
Spark then aggregates the scores, in one pass, into a bounded summary: one entry per (scorer,
slice keys, label, score bin of width 1/BINS, side of the threshold) with its row count and mean
score. The driver collects only that summary (at most scorers x slice groups x 2 x (BINS + 1)
entries, whatever the test set's size) and evaluate computes the metrics, slices and plots from
it with the entries weighted by their counts (`metrics.Scored`).

What that gives against the pandas engine's every-row figures on the same model:
- exact: rows, positive rate, and everything at the threshold (confusion matrix, precision,
  recall, F1, accuracy): an entry never straddles the threshold and its mean score is kept on
  its side;
- ROC AUC: the entries keep the rows' order across bins, so only a positive and a negative in
  the same bin (scores less than 1/BINS apart) can be ordered differently: the error is at most
  the share of such (positive, negative) pairs (tests/images/pipeline/test_spark_checks.py
  checks that bound on the Telco data: 2.4e-4 there, and the two figures agree to 6 decimals);
- average precision, log loss, Brier score, calibration error and the curves use each entry's
  mean score for its rows: the same figures within 1e-3 on the Telco data.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

from shipyard_pipeline import dataset
from shipyard_pipeline.metrics import Scored, Scorer, TestScores, slice_keys
from shipyard_pipeline.spark_storage import read_parquet
from shipyard_spec.model import PipelineSpec

BINS = 10_000  # score bins of the summary: scores 1e-4 apart may be ordered as ties
SCORER, LABEL, BIN, ABOVE = "__scorer__", "__label__", "__bin__", "__above__"
SCORE, ROWS = "__score__", "__rows__"


def test_scores(
    spark: SparkSession, test_uri: str, scorers: dict[str, Scorer], spec: PipelineSpec
) -> TestScores:
    rows = read_parquet(spark, test_uri)
    keys = [c for c in spec.evaluation.slices if c in rows.columns]
    target = spec.columns.target
    schema = StructType(
        [
            StructField(SCORER, StringType(), False),
            StructField(LABEL, LongType(), False),
            *(StructField(c, StringType(), False) for c in keys),
            StructField(SCORE, DoubleType(), False),
        ]
    )

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """Each batch once per scorer: its name, the labels, the slice keys, its scores."""
        for batch in batches:
            labelled = pd.DataFrame({LABEL: dataset.target_vector(spec, batch[target])}, index=batch.index)
            for column in keys:
                labelled[column] = slice_keys(batch[column]).astype(object)
            for name, scorer in scorers.items():
                scored = {SCORER: name, SCORE: scorer.score(batch).astype("float64")}
                yield labelled.assign(**scored)[schema.fieldNames()]

    summary = _summary(rows.mapInPandas(score, schema), keys, spec.evaluation.threshold)
    parts = {name: summary[summary[SCORER] == name].reset_index(drop=True) for name in scorers}
    curves = {
        name: Scored(part[LABEL].to_numpy(), part[SCORE].to_numpy(), part[ROWS].to_numpy())
        for name, part in parts.items()
    }
    model = next(iter(scorers))  # the slices are the first scorer's (`evaluate.MODEL`)
    return TestScores(curves, parts[model][keys])


def _summary(scored: DataFrame, keys: list[str], threshold: float) -> pd.DataFrame:
    """Row count and mean score per (scorer, keys, label, score bin, side of the threshold), in
    score order: one aggregation, the only rows the driver collects."""
    score = F.col(SCORE)
    summary = (
        scored.groupBy(
            SCORER,
            *keys,
            LABEL,
            F.least(F.floor(score * BINS), F.lit(BINS - 1)).alias(BIN),
            (score >= threshold).alias(ABOVE),
        )
        .agg(F.count(F.lit(1)).alias(ROWS), F.avg(score).alias(SCORE))
        .toPandas()
    )
    # A mean of scores on one side of the threshold stays there despite rounding.
    below = np.nextafter(threshold, -np.inf)
    summary[SCORE] = np.where(
        summary[ABOVE], np.maximum(summary[SCORE], threshold), np.minimum(summary[SCORE], below)
    )
    return summary.sort_values([SCORER, SCORE, LABEL, *keys], kind="stable", ignore_index=True)
