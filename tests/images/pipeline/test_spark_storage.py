"""What the executors write for the driver (spark_storage.written): a refused write names its cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard_pipeline import spark_engine, spark_storage
from shipyard_pipeline.errors import StepError

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
