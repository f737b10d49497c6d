"""The test split scored on Spark, summarised for evaluate without collecting its rows.

The executors read the test split, and `mapInPandas` hands each Arrow batch to the same
`metrics.Scorer`s (the fitted Pipelines, pickled with the function) and to the same pandas
functions for the 0/1 label (`dataset.target_vector`) and the slice keys (`metrics.slice_keys`).
Spark then aggregates each scorer's scores into a bounded summary: one entry per
(slice keys for the model, label, score bin of width 1/BINS, side of the threshold) with its row
count and mean score. The driver collects only that summary (at most groups x 2 x (BINS + 1)
entries, whatever the test set's size) and evaluate computes the metrics, slices and plots from
it with the entries weighted by their counts (`metrics.Scored`).

What that gives against the pandas engine's every-row figures on the same model:
- exact: rows, positive rate, and everything at the threshold (confusion matrix, precision,
  recall, F1, accuracy): an entry never straddles the threshold and its mean score is kept on
  its side;
- ROC AUC: the entries keep the rows' order across bins, so only a positive and a negative in
  the same bin (scores less than 1/BINS apart) can be ordered differently: the error is at most
  the share of such (positive, negative) pairs (tests/images/pipeline/test_spark_engine.py
  checks that bound on the Telco data, where the difference is of the order of 1e-5);
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
from shipyard_pipeline.spark_score import spark_uri
from shipyard_spec.model import PipelineSpec

BINS = 10_000  # score bins of the summary: scores 1e-4 apart may be ordered as ties
LABEL, BIN, ABOVE, ROWS, SCORE = "__label__", "__bin__", "__above__", "__rows__", "__score__"
MODEL = "model"  # the scorer whose summary is kept per slice (`evaluate.MODEL`)


def test_scores(
    spark: SparkSession, test_uri: str, scorers: dict[str, Scorer], spec: PipelineSpec
) -> TestScores:
    rows = spark.read.parquet(spark_uri(test_uri))
    keys = [c for c in spec.evaluation.slices if c in rows.columns]
    target = spec.columns.target
    schema = StructType(
        [
            StructField(LABEL, LongType(), False),
            *(StructField(c, StringType(), False) for c in keys),
            *(StructField(name, DoubleType(), False) for name in scorers),
        ]
    )

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            scored = pd.DataFrame({LABEL: dataset.target_vector(spec, batch[target])}, index=batch.index)
            for column in keys:
                scored[column] = slice_keys(batch[column]).astype(object)
            for name, scorer in scorers.items():
                scored[name] = scorer.score(batch).astype("float64")
            yield scored

    scored = rows.mapInPandas(score, schema).persist()  # scored once, summarised per scorer
    try:
        summaries = {
            name: _summary(scored, name, keys if name == MODEL else [], spec.evaluation.threshold)
            for name in scorers
        }
    finally:
        scored.unpersist()
    curves = {
        name: Scored(s[LABEL].to_numpy(), s[SCORE].to_numpy(), s[ROWS].to_numpy())
        for name, s in summaries.items()
    }
    return TestScores(curves, summaries[MODEL][keys].reset_index(drop=True))


def _summary(scored: DataFrame, name: str, keys: list[str], threshold: float) -> pd.DataFrame:
    """Row count and mean score per (keys, label, score bin, side of the threshold), in score order."""
    score = F.col(name)
    summary = (
        scored.groupBy(
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
    return summary.sort_values([SCORE, LABEL, *keys], kind="stable", ignore_index=True)
