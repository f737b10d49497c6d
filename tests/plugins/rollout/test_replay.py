"""The replay module's log sampling: the inputs of the newest prediction-log records, the
requests a given version answered only, NaN as null, a part that does not parse skipped."""

from __future__ import annotations

import json
from pathlib import Path

from support.servers import REPO

from shipyard.rollout.replay import sample_logged_requests
from shipyard_spec import load_spec
from shipyard_spec.contract import (
    PredictionRecord,
    prediction_log_dir,
    prediction_log_part_name,
    prediction_log_partition,
    serving_name,
)

SPEC = load_spec(REPO / "dags/pipelines/telco_churn.yaml")


def partition(root: Path, day: str) -> Path:
    return Path(prediction_log_partition(prediction_log_dir(str(root), serving_name(SPEC.name)), day))


def write_part(root: Path, day: str, unix_ms: int, records: list[dict]) -> None:
    directory = partition(root, day)
    directory.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(record) + "\n" for record in records)
    (directory / prediction_log_part_name(unix_ms, 1)).write_text(lines)


def record(version: str, tenure: float) -> dict:
    inputs = {"tenure": tenure, "contract": None}
    return {PredictionRecord.TS: "2026-11-30T00:00:00Z", PredictionRecord.MODEL_VERSION: version,
            PredictionRecord.INPUTS: inputs, PredictionRecord.SCORE: 0.5}  # fmt: skip


def test_newest_rows_of_the_version_first_and_a_broken_part_skipped(tmp_path):
    write_part(tmp_path, "2026-11-29", 1000, [record("1", 1), record("1", 2)])
    write_part(tmp_path, "2026-11-30", 2000, [record("1", 3), record("2", 99), record("1", float("nan"))])
    broken = Path(
        prediction_log_partition(prediction_log_dir(str(tmp_path), serving_name(SPEC.name)), "2026-11-30")
    )
    (broken / prediction_log_part_name(3000, 1)).write_text("{not json\n")

    rows = sample_logged_requests(SPEC, limit=3, version="1", root=str(tmp_path))

    assert rows == [{"tenure": 3, "contract": None}, {"tenure": None, "contract": None},
                    {"tenure": 1, "contract": None}]  # fmt: skip
    assert len(sample_logged_requests(SPEC, limit=100, root=str(tmp_path))) == 5  # every version
    assert sample_logged_requests(SPEC, limit=10, root=str(tmp_path / "none")) == []
