"""Snapshot partitions: one immutable Parquet file per data interval, complete once its manifest exists.

    {root}/{pipeline}/snapshots/interval_start=<YYYY-MM-DDTHH:MM:SS>/data.parquet
                                                                   /_MANIFEST.json
                                                                   /_QUARANTINED.json (failed validation)

The manifest (rows, schema fingerprint, content hash) is written last and atomically, so a
reader that finds it can trust the data file; a directory without one is an unfinished
ingest and is ignored. A snapshot whose validation failed carries a quarantine marker (why,
which run, which content) and never enters a training window; validating it again after a
fixed re-ingest (`ingest --force`) clears the marker.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shipyard_pipeline import storage
from shipyard_pipeline.context import to_utc

DATA_FILE = "data.parquet"
MANIFEST_FILE = "_MANIFEST.json"
QUARANTINE_FILE = "_QUARANTINED.json"


def schema_fingerprint(frame: pd.DataFrame) -> str:
    """Hash of the column names and dtypes, in order: it changes when the schema drifts."""
    return dtypes_fingerprint(frame.dtypes)


def dtypes_fingerprint(dtypes: pd.Series) -> str:
    schema = ";".join(f"{name}:{dtype}" for name, dtype in dtypes.astype(str).items())
    return hashlib.sha256(schema.encode()).hexdigest()[:16]


class ContentHash:
    """Hash of the values (and the schema) of rows fed in order, in one frame or in chunks: equal
    for equal rows whatever wrote them, however they were chunked (pandas hashes row by row)."""

    def __init__(self, dtypes: pd.Series) -> None:
        self._digest = hashlib.sha256(dtypes_fingerprint(dtypes).encode())

    def update(self, rows: pd.DataFrame) -> None:
        self._digest.update(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())

    def hexdigest(self) -> str:
        return self._digest.hexdigest()[:32]


def content_hash(frame: pd.DataFrame) -> str:
    content = ContentHash(frame.dtypes)
    content.update(frame)
    return content.hexdigest()


def dataset_fingerprint(manifests: list[dict[str, Any]]) -> str:
    """One fingerprint for a training window: the content hashes of its snapshots, in order."""
    hashes = "".join(m["content_hash"] for m in sorted(manifests, key=lambda m: m["interval_start"]))
    return hashlib.sha256(hashes.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Snapshot:
    """A published partition: its directory, its manifest and its quarantine marker, if any."""

    directory: str
    manifest: dict[str, Any]
    quarantine: dict[str, Any] | None = None

    @property
    def quarantined(self) -> bool:
        return self.quarantine is not None

    @property
    def data_uri(self) -> str:
        return storage.join(self.directory, DATA_FILE)

    @property
    def interval_start(self) -> datetime:
        return to_utc(self.manifest["interval_start"])

    @property
    def interval_end(self) -> datetime:
        return to_utc(self.manifest["interval_end"])

    def read(self) -> pd.DataFrame:
        fs, path = storage.filesystem(self.data_uri)
        with fs.open(path, "rb") as handle:
            return pd.read_parquet(handle)

    def read_chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        """The rows in order, at most `rows` at a time."""
        fs, path = storage.filesystem(self.data_uri)
        with fs.open(path, "rb") as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=rows):
                yield batch.to_pandas()


def read_published(directory: str) -> Snapshot | None:
    """The snapshot in `directory`, or None if its manifest was never published."""
    manifest_uri = storage.join(directory, MANIFEST_FILE)
    if not storage.exists(manifest_uri):
        return None
    quarantine_uri = storage.join(directory, QUARANTINE_FILE)
    quarantine = storage.read_json(quarantine_uri) if storage.exists(quarantine_uri) else None
    return Snapshot(directory, storage.read_json(manifest_uri), quarantine)


def quarantine(published: Snapshot, marker: dict[str, Any]) -> None:
    """Keep `published` out of every training window; `marker` says why (kept for the audit)."""
    storage.write_json(storage.join(published.directory, QUARANTINE_FILE), marker)


def release(published: Snapshot) -> None:
    """Lift a quarantine (the snapshot passed validation)."""
    storage.remove(storage.join(published.directory, QUARANTINE_FILE))


def publish(directory: str, frame: pd.DataFrame, manifest: dict[str, Any]) -> Snapshot:
    """Write the data, then the manifest; any manifest left by an earlier ingest goes first.

    A quarantine marker stays: re-ingested data is trusted only once it passes validation."""
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    return publish_chunks(directory, [frame], frame.dtypes, schema, manifest)


def publish_chunks(
    directory: str,
    chunks: Iterable[pd.DataFrame],
    dtypes: pd.Series,
    schema: pa.Schema,
    manifest: dict[str, Any],
) -> Snapshot:
    """`publish` for rows that come in chunks (all with `dtypes`), one chunk in memory at a time:
    each becomes a row group of a local Parquet file, uploaded whole. The manifest gets the rows'
    `content_hash`."""
    storage.remove(storage.join(directory, MANIFEST_FILE))
    content = ContentHash(dtypes)
    with tempfile.TemporaryDirectory(prefix="shipyard-snapshot-") as local:
        data = f"{local}/{DATA_FILE}"
        with pq.ParquetWriter(data, schema) as writer:
            for chunk in chunks:
                content.update(chunk)
                writer.write_table(pa.Table.from_pandas(chunk, schema=schema, preserve_index=False))
        storage.upload_file(data, storage.join(directory, DATA_FILE))
    storage.write_json(
        storage.join(directory, MANIFEST_FILE), {**manifest, "content_hash": content.hexdigest()}
    )
    return read_published(directory)


def list_published(snapshots_root: str) -> list[Snapshot]:
    """Every published snapshot under the root, quarantined ones included, oldest interval first."""
    found = (read_published(storage.join(snapshots_root, name)) for name in storage.list_dirs(snapshots_root))
    return sorted((s for s in found if s is not None), key=lambda s: s.interval_start)
