"""The engine a pipeline's heavy work runs on (spec `engine`): one strategy object per engine.

An engine reads the source's interval (ingest), holds the training window and fits the model on
it (train), and scores a snapshot (score). Both engines fit the same
`modeling.build_pipeline` Pipeline and score with the same `ScoringModel`, so what they
register and publish is the same artifact and the same partition; only where the rows are
processed differs. pandas: in the step process. Spark: on the Spark master of
SHIPYARD_SPARK_MASTER (`spark`); pyspark is an optional part of the pipeline image, imported
by the Spark engine's steps only, so a pandas pipeline runs without it.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from shipyard_pipeline import dataset, snapshot, source, storage
from shipyard_pipeline.dataset import FeatureSet
from shipyard_pipeline.errors import StepError
from shipyard_pipeline.metrics import Scored, Scorer, TestScores
from shipyard_pipeline.training_window import PandasWindow, TrainingWindow
from shipyard_spec.contract import Step
from shipyard_spec.model import PipelineSpec, Spark

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.datasource.fluent.interfaces import Batch

    from shipyard_pipeline.context import RunContext
    from shipyard_pipeline.scoring_model import ScoringModel

log = logging.getLogger(__name__)

SPARK_PACKAGES = ("pyspark", "py4j")  # the Spark part of the image (requirements-spark.txt)


class Engine(Protocol):
    # Reading the source (ingest) and the training window (train).
    def read_source(
        self, spec: PipelineSpec, start: datetime, end: datetime, order: list[str]
    ) -> AbstractContextManager[Iterator[pd.DataFrame]]:
        """`source.read_interval`'s chunks: the rows of [start, end) sorted by `order`."""
        ...

    def training_data(
        self, spec: PipelineSpec, snapshots: list[snapshot.Snapshot]
    ) -> AbstractContextManager[TrainingWindow]:
        """The window of `snapshots`, deduplicated and split, ready to fit on."""
        ...

    def scored(
        self, model: ScoringModel, published: snapshot.Snapshot, keys: list[str], batch_rows: int
    ) -> AbstractContextManager[Iterator[pd.DataFrame]]:
        """The snapshot's rows scored (`ScoringModel.scored_rows`), in snapshot order, in chunks of
        at most `batch_rows` rows."""
        ...

    # validate and evaluate
    def validation_batch(
        self, gx_context: AbstractDataContext, spec: PipelineSpec, published: snapshot.Snapshot
    ) -> AbstractContextManager[tuple[Batch, FeatureSet]]:
        """A Great Expectations batch of the snapshot's rows with `expectations.TARGET_POSITIVE`, and
        the features the suite checks (`expectations.suite_features`)."""
        ...

    def test_scores(self, test_uri: str, scorers: dict[str, Scorer], spec: PipelineSpec) -> TestScores:
        """Each scorer's scores of the test split with their labels (`metrics.Scored`: every row, or a
        bounded summary), and the slice columns' values for the first scorer's entries."""
        ...


class PandasEngine:
    """Everything in the step process."""

    # Reading the source (ingest) and the training window (train).
    @contextlib.contextmanager
    def read_source(
        self, spec: PipelineSpec, start: datetime, end: datetime, order: list[str]
    ) -> Iterator[Iterator[pd.DataFrame]]:
        yield source.read_interval(spec, start, end, order)

    @contextlib.contextmanager
    def training_data(
        self, spec: PipelineSpec, snapshots: list[snapshot.Snapshot]
    ) -> Iterator[TrainingWindow]:
        yield PandasWindow(spec, snapshots)

    @contextlib.contextmanager
    def scored(
        self, model: ScoringModel, published: snapshot.Snapshot, keys: list[str], batch_rows: int
    ) -> Iterator[Iterator[pd.DataFrame]]:
        yield model.scored_rows(keys, published.read_chunks(batch_rows))

    # validate and evaluate
    @contextlib.contextmanager
    def validation_batch(
        self, gx_context: AbstractDataContext, spec: PipelineSpec, published: snapshot.Snapshot
    ) -> Iterator[tuple[Batch, FeatureSet]]:
        from shipyard_pipeline import expectations

        frame = published.read()
        batch = (
            gx_context.data_sources.add_pandas("snapshot")
            .add_dataframe_asset(spec.name)
            .add_batch_definition_whole_dataframe("interval")
            .get_batch(batch_parameters={"dataframe": expectations.with_target_positive(spec, frame)})
        )
        yield batch, expectations.suite_features(spec, frame)

    def test_scores(self, test_uri: str, scorers: dict[str, Scorer], spec: PipelineSpec) -> TestScores:
        """Every test row."""
        test = pd.read_parquet(io.BytesIO(storage.read_bytes(test_uri)))
        labels = dataset.target_vector(spec, test[spec.columns.target])
        curves = {name: Scored(labels, scorer.score(test)) for name, scorer in scorers.items()}
        return TestScores(curves, test[[c for c in spec.evaluation.slices if c in test.columns]])


def _spark(context: RunContext, step: Step) -> Engine:
    try:  # pyspark: imported by a Spark pipeline's steps only
        from shipyard_pipeline.spark_engine import SparkEngine
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] not in SPARK_PACKAGES:
            raise
        raise StepError(
            f"the spec selects engine: spark but {e.name} is not installed "
            "(make spark, or the pipeline image's Spark variant)"
        ) from e
    scratch = context.scratch_dir(step)
    if storage.exists(scratch):  # parts of an earlier try of this step, killed while they were written
        log.info("removing %s: what an earlier try of this step left", scratch)
        storage.remove(scratch)
    return SparkEngine(context.spec.spark or Spark(), scratch)


ENGINES: dict[str, Callable[[RunContext, Step], Engine]] = {
    "pandas": lambda _context, _step: PandasEngine(),
    "spark": _spark,
}


def engine(context: RunContext, step: Step) -> Engine:
    """The engine the run's spec names, with the spec's settings for it and the step's scratch space."""
    return ENGINES[context.spec.engine](context, step)
