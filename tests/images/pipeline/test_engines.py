"""The engine choice: a pandas pipeline runs without the Spark part of the pipeline image.

The probe runs in the pipeline venv with pyspark and py4j made unimportable (an import hook
raising ModuleNotFoundError, as in an image without `requirements-spark.txt`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.specs import TELCO

WITHOUT_SPARK = """
import importlib.abc, sys

class WithoutSpark(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("pyspark", "py4j"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, WithoutSpark())
from shipyard_pipeline import engines, score, train
from shipyard_pipeline.errors import StepError
from datetime import UTC, datetime
from shipyard_pipeline.context import RunContext
from shipyard_spec import load_spec
from shipyard_spec.contract import Step
spec = load_spec(sys.argv[1])
week = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 12, tzinfo=UTC)
print(type(engines.engine(RunContext(spec, *week, "run", sys.argv[2]), Step.TRAIN)).__name__)
try:
    spark = spec.model_copy(update={"engine": "spark"})
    engines.engine(RunContext(spark, *week, "run", sys.argv[2]), Step.TRAIN)
except StepError as e:
    print(e)
"""


def test_a_pandas_pipeline_needs_no_pyspark_and_a_spark_one_says_how_to_get_it(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", WITHOUT_SPARK, str(TELCO), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    pandas, spark = completed.stdout.splitlines()
    assert pandas == "PandasEngine"
    assert "engine: spark but pyspark is not installed (make spark" in spark
