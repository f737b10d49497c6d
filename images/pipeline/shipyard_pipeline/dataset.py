"""The training data of one run: the window of snapshots, the resolved features, the split.

Everything here is a pure function of the published snapshots and the spec, so train and
evaluate see the same rows; the split itself is stored by the train step (see `train.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from shipyard_pipeline import snapshot
from shipyard_pipeline.errors import CheckFailed, StepError
from shipyard_spec.model import PipelineSpec

log = logging.getLogger(__name__)


def window_snapshots(
    snapshots_root: str, interval_start: datetime, interval_end: datetime, intervals: int
) -> list[snapshot.Snapshot]:
    """Published, unquarantined snapshots of the last `intervals` intervals up to `interval_end`.

    The window is [end - intervals * (end - start), end): interval lengths come from the run
    itself, so a weekly and a daily schedule both work without parsing cron. A snapshot that
    overlaps the window and ends by `interval_end` belongs to it (never one from the future).
    """
    window_start = interval_end - intervals * (interval_end - interval_start)
    in_window = [
        s
        for s in snapshot.list_published(snapshots_root)
        if s.interval_end <= interval_end and s.interval_end > window_start
    ]
    for held in (s for s in in_window if s.quarantined):
        log.warning(
            "leaving out quarantined snapshot %s: %s", held.directory, held.quarantine.get("reason", "")
        )
    chosen = [s for s in in_window if not s.quarantined]
    if not chosen:
        held = f" ({len(in_window)} quarantined)" if in_window else ""
        raise StepError(
            f"no published snapshot under {snapshots_root} in the training window "
            f"[{window_start.isoformat()}, {interval_end.isoformat()}){held}: run ingest first"
        )
    log.info(
        "training window [%s, %s): %d snapshot(s) of up to %d intervals",
        window_start.isoformat(),
        interval_end.isoformat(),
        len(chosen),
        intervals,
    )
    return chosen


def load(spec: PipelineSpec, snapshots: list[snapshot.Snapshot]) -> pd.DataFrame:
    """The window's rows; a row found in two snapshots (a wide bootstrap ingest overlapping
    weekly ones) is kept once, keyed by id and event time."""
    frame = pd.concat([s.read() for s in snapshots], ignore_index=True)
    key = [c for c in (spec.columns.id, spec.columns.event_time) if c]
    deduplicated = frame.drop_duplicates(subset=key, keep="last", ignore_index=True)
    if len(deduplicated) < len(frame):
        log.info("dropped %d rows present in more than one snapshot", len(frame) - len(deduplicated))
    return deduplicated


@dataclass(frozen=True)
class FeatureSet:
    numeric: list[str]
    categorical: list[str]

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def resolve_features(spec: PipelineSpec, frame: pd.DataFrame) -> FeatureSet:
    """The spec's explicit features, plus (with `infer: true`) every other usable column by dtype."""
    numeric, categorical = list(spec.features.numeric), list(spec.features.categorical)
    if spec.features.infer:
        taken = {*numeric, *categorical, *spec.features.exclude}
        taken |= {c for c in (spec.columns.id, spec.columns.target, spec.columns.event_time) if c}
        for column in frame.columns:
            if column in taken:
                continue
            dtype = frame[column].dtype
            if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
                numeric.append(column)
            elif pd.api.types.is_object_dtype(dtype) or isinstance(
                dtype, pd.CategoricalDtype | pd.StringDtype
            ):
                categorical.append(column)
    missing = [c for c in [*numeric, *categorical] if c not in frame.columns]
    if missing:
        raise CheckFailed(f"schema drift: feature column(s) {missing} are not in the snapshots")
    if not numeric and not categorical:
        raise StepError(f"no feature columns left after inference in columns {list(frame.columns)}")
    return FeatureSet(numeric, categorical)


def target_vector(spec: PipelineSpec, values: pd.Series) -> np.ndarray:
    """1 where the target equals the spec's positive label, else 0 (numbers compared as numbers)."""
    label = spec.columns.positive_label
    if pd.api.types.is_numeric_dtype(values) and not isinstance(label, str):
        positive = values.astype(float) == float(label)
    else:
        positive = values.astype(str) == str(label)
    return positive.to_numpy(dtype=np.int64)


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def parts(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


def applied_split_policy(spec: PipelineSpec) -> str:
    """The policy `split` applies: `time` needs an event-time column, so without one it is `random`
    whatever the spec's default says (a spec with event times may not ask for random: it leaks)."""
    return "time" if spec.columns.event_time else "random"


def split(spec: PipelineSpec, frame: pd.DataFrame) -> Split:
    """Time split: oldest rows train, then validation, newest test; random only without event times."""
    policy = spec.split
    if applied_split_policy(spec) == "time":
        ordered = frame.sort_values([spec.columns.event_time, spec.columns.id], kind="stable")
    else:
        ordered = frame.sample(frac=1.0, random_state=policy.seed)
    ordered = ordered.reset_index(drop=True)
    validation_start, test_start = split_points(spec, len(ordered))
    parts = Split(ordered[:validation_start], ordered[validation_start:test_start], ordered[test_start:])
    for name, part in parts.parts().items():
        check_classes(name, len(part), set(target_vector(spec, part[spec.columns.target])))
    return parts


def split_points(spec: PipelineSpec, rows: int) -> tuple[int, int]:
    """Where validation and test start among `rows` ordered rows (train is before both)."""
    policy = spec.split
    test_start = round(rows * (1 - policy.test_fraction))
    validation_start = round(rows * (1 - policy.test_fraction - policy.validation_fraction))
    return validation_start, test_start


def check_classes(name: str, rows: int, labels: set[int]) -> None:
    """CheckFailed when split part `name` holds fewer than both target classes."""
    if len(labels) < 2:
        raise CheckFailed(
            f"the {name} split has {rows} rows with only target class(es) {sorted(labels)}: "
            "a binary classifier needs both; widen the training window"
        )
