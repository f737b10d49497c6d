"""What the executors write for the driver (spark_storage.written): a refused write names its cause."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.specs import spark_pipeline

from shipyard_pipeline import engines, spark_engine, spark_storage
from shipyard_pipeline.context import RunContext
from shipyard_pipeline.errors import StepError
from shipyard_spec import load_spec
from shipyard_spec.contract import Step

pytestmark = pytest.mark.spark


def test_a_scratch_space_the_executors_cannot_write_ends_the_step_naming_the_work_and_the_cause(
    tmp_path: Path,
) -> None:
    # A file where the run's scratch directory goes: every write under it is refused, as by a
    # store that is full, read-only or gone.
    scratch = tmp_path / "scratch"
    scratch.write_text("not a directory")
    with spark_engine.session("test-scratch-refused") as spark:
        rows = spark.range(100).repartition(2)
        with (
            pytest.raises(StepError, match=r"^writing the train split on Spark failed: ") as raised,
            spark_storage.written(rows, str(scratch), "writing the train split"),
        ):
            pytest.fail("the parts were never written, nothing can be read")
    assert str(scratch) in str(raised.value)
    assert scratch.read_text() == "not a directory"


def test_the_next_try_of_a_step_removes_what_a_killed_try_left_in_its_scratch_space(tmp_path: Path) -> None:
    week = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 12, tzinfo=UTC)
    run = RunContext(load_spec(spark_pipeline(tmp_path)), *week, "run-1", str(tmp_path / "storage"))
    killed = Path(run.scratch_dir(Step.TRAIN)) / "spark-killed" / "part-00000.parquet"
    other_step = Path(run.scratch_dir(Step.SCORE)) / "spark-running" / "part-00000.parquet"
    for part in (killed, other_step):
        part.parent.mkdir(parents=True)
        part.write_bytes(b"PAR1")
    engine = engines.engine(run, Step.TRAIN)
    assert engine.scratch == run.scratch_dir(Step.TRAIN)
    assert not Path(engine.scratch).exists()
    assert other_step.exists()  # another step's scratch space is that step's own
