"""Reading one window of prediction logs: time bounds, other versions, corrupt files."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from shipyard_pipeline.drift.prediction_logs import partition_dates, read_window, write_parts

DAY = datetime(2026, 3, 2, tzinfo=UTC)
NEXT_DAY = datetime(2026, 3, 3, tzinfo=UTC)


def test_partitions_cover_the_window_and_not_the_exclusive_end() -> None:
    assert partition_dates(DAY, NEXT_DAY) == ["2026-03-02"]
    assert partition_dates(datetime(2026, 3, 1, 22, tzinfo=UTC), NEXT_DAY) == ["2026-03-01", "2026-03-02"]


def test_rows_outside_the_window_are_left_out(
    tmp_path: Path, make_traffic: Callable[..., pd.DataFrame], make_records: Callable[..., list[dict]]
) -> None:
    # 30 rows one a minute from 23:45 the day before: 15 before the window, 15 inside
    write_parts(
        str(tmp_path),
        "churn",
        make_records(make_traffic(30, seed=1), datetime(2026, 3, 1, 23, 45, tzinfo=UTC), "3"),
    )
    window = read_window(str(tmp_path), "churn", "3", DAY, NEXT_DAY)
    assert len(window.rows) == 15
    assert window.rows["ts"].min() == DAY
    assert {"tenure", "contract", "score", "id"} <= set(window.rows.columns)


def test_other_versions_are_counted_and_corrupt_files_skipped(
    tmp_path: Path, make_traffic: Callable[..., pd.DataFrame], make_records: Callable[..., list[dict]]
) -> None:
    root = str(tmp_path)
    write_parts(root, "churn", make_records(make_traffic(20, seed=1), DAY, "3"))
    write_parts(root, "churn", make_records(make_traffic(7, seed=2), DAY, "2"))
    partition = tmp_path / "churn" / "date=2026-03-02"
    (partition / "part-1-1.jsonl").write_text('{"ts": "2026-03-02T01:00:00+00:00", "model_ver')  # truncated
    (partition / "part-2-1.jsonl").write_bytes(b"\xff\xfe not json\n")
    (partition / "part-3-1.jsonl").write_text('{"ts": "2026-03-02T01:00:00+00:00", "score": 0.5}\n')
    (partition / ".part-4-1.jsonl.tmp").write_text("still being written")

    window = read_window(root, "churn", "3", DAY, NEXT_DAY)

    assert window.counts() == {
        "files_read": 2,
        "rows_read": 20,
        "rows_ignored_other_versions": 7,
        "other_versions": {"2": 7},
        "corrupt_files_skipped": 3,
    }


def test_an_empty_window_is_an_empty_frame_not_an_error(tmp_path: Path) -> None:
    window = read_window(str(tmp_path / "nothing-here"), "churn", "3", DAY, NEXT_DAY)
    assert window.rows.empty
    assert window.counts()["files_read"] == 0


def test_logs_are_read_under_the_served_name_of_the_pipeline(
    tmp_path: Path, make_traffic: Callable[..., pd.DataFrame], make_records: Callable[..., list[dict]]
) -> None:
    """The predictor of pipeline `telco_churn` serves and logs as `telco-churn` (contract.serving_name)."""
    partition = tmp_path / "telco-churn" / "date=2026-03-02"
    partition.mkdir(parents=True)
    lines = [
        json.dumps(r, default=str) for r in make_records(make_traffic(5, seed=1), DAY, "3", "telco-churn")
    ]
    (partition / "part-1-1.jsonl").write_text("\n".join(lines) + "\n")
    assert len(read_window(str(tmp_path), "telco_churn", "3", DAY, NEXT_DAY).rows) == 5
