"""The prediction log stays bounded: rows are sampled, a retention deletes the oldest parts (issue 12 #10)."""

from __future__ import annotations

import json
import os
import time
from datetime import date
from pathlib import Path

import fsspec
import numpy as np
import pytest

from shipyard_serving.model_dir import Feature
from shipyard_serving.prediction_log import PredictionLog, Retention
from shipyard_serving.requests import RequestDecoder
from shipyard_spec.contract import PredictionRecord, prediction_log_dir

TODAY = date(2026, 11, 30)


def _part(root: Path, day: str, unix_ms: int, size: int) -> Path:
    path = root / f"date={day}" / f"part-{unix_ms}-1.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def test_retention_deletes_old_days_then_the_oldest_parts_over_the_size_cap(tmp_path: Path) -> None:
    expired = _part(tmp_path, "2026-11-16", 1, 10)  # 15 days before TODAY: outside 14 days
    oldest = _part(tmp_path, "2026-11-17", 2, 100)
    older = _part(tmp_path, "2026-11-30", 3, 100)
    newest = _part(tmp_path, "2026-11-30", 4, 100)
    (tmp_path / "date=2026-11-30" / ".part-5-1.jsonl.tmp").write_bytes(b"x" * 1000)  # being written

    deleted = Retention(max_bytes=250, max_age_days=14).apply(str(tmp_path), TODAY)

    assert sorted(Path(p).name for p in deleted) == sorted([expired.name, oldest.name])
    assert sorted(tmp_path.glob("date=*/part-*.jsonl")) == [older, newest]


def test_retention_keeps_everything_inside_the_limits(tmp_path: Path) -> None:
    parts = [_part(tmp_path, "2026-11-17", 1, 100), _part(tmp_path, "2026-11-30", 2, 100)]
    assert Retention(max_bytes=200, max_age_days=14).apply(str(tmp_path), TODAY) == []
    assert sorted(tmp_path.glob("date=*/part-*.jsonl")) == parts


def test_retention_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        Retention(max_bytes=0, max_age_days=14)


def _log_rows(root: Path, sample_rate: float, cap: int, uri: str | None = None) -> list[Path]:
    """Offer 20 requests of 1,000 rows to a PredictionLog under `root` (or `uri` naming it);
    the part files it leaves."""
    decoder = RequestDecoder([Feature("x", numeric=True)], max_batch_size=1000)
    batch = decoder.decode({"inputs": {"x": list(range(1000))}})
    log = PredictionLog(
        uri or str(root),
        "m",
        "1",
        sample_rate,
        Retention(cap, 14),
        flush_seconds=0.05,
        retention_check_seconds=0.0,
        # Parts of at most ~11 KB whatever the writer's pace (a loaded machine batches more rows
        # a flush): each part fits in the smallest cap below, so the newest ones are kept.
        max_records_per_part=100,
    )
    for _ in range(20):
        log.record(batch, np.full(1000, 0.5))
        time.sleep(0.06)
    log.close()
    return sorted(root.glob("m/date=*/part-*.jsonl"))


def test_only_the_sampled_share_of_rows_is_logged(tmp_path: Path) -> None:
    parts = _log_rows(tmp_path, 0.1, 1 << 30)
    rows = [json.loads(line) for p in parts for line in p.read_text().splitlines()]
    assert 1_500 < len(rows) < 2_500  # 10 % of 20,000


def test_the_log_stays_under_its_size_cap(tmp_path: Path) -> None:
    cap = 50_000  # every row is ~100 bytes: 2 MB offered
    parts = _log_rows(tmp_path, 1.0, cap)
    assert parts
    assert sum(os.path.getsize(p) for p in parts) <= cap


def test_a_log_root_uri_is_written_through_fsspec_with_the_contract_layout(tmp_path: Path) -> None:
    parts = _log_rows(tmp_path, 0.01, 1 << 30, uri=f"file://{tmp_path}")
    assert parts
    [part, *_] = parts
    assert part.parent.parent == Path(prediction_log_dir(str(tmp_path), "m"))
    record = json.loads(part.read_text().splitlines()[0])
    assert set(record) == {k for k in PredictionRecord if k != PredictionRecord.ID}


def test_the_serving_image_can_write_to_object_storage() -> None:
    """s3fs is in the serving lock: an s3:// log root resolves to the S3 filesystem (no connection made)."""
    fs, path = fsspec.core.url_to_fs("s3://bucket/prediction_logs")
    assert ("s3" in fs.protocol, path) == (True, "bucket/prediction_logs")
