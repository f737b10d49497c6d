"""A frame read in chunks, spilled to local disk, replayed with the dtypes of the whole frame.

pandas infers dtypes chunk by chunk: a chunk in which an integer column has a NULL reads it as
float64, a chunk in which a column is all NULL reads it as object. A frame read in one piece
has one dtype per column, inferred from all its rows. `Spill` keeps each chunk in a local file
while recording what it saw (dtypes of the non-null values, nulls, Arrow types of text
columns, whether the rows arrive in order), then replays the chunks cast to the dtypes the
whole frame would have had: a chunked read gives the frame (and the content hash) of an
unchunked read, with one chunk in memory at a time.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import pandas as pd
import pyarrow as pa


@dataclass
class _Column:
    """What the chunks showed of one column."""

    dtypes: set[object] = field(default_factory=set)  # of the chunks where it has a value
    nulls: bool = False
    text_type: pa.DataType | None = None  # Arrow type of its values where pandas holds objects

    def common_dtype(self) -> object:
        """The dtype pandas gives the column when it reads all the rows at once."""
        if not self.dtypes:
            return object  # NULL in every row
        if len(self.dtypes) == 1:
            (dtype,) = self.dtypes
        elif all(pd.api.types.is_integer_dtype(d) or pd.api.types.is_float_dtype(d) for d in self.dtypes):
            dtype = "float64"
        else:
            return object
        if self.nulls and pd.api.types.is_integer_dtype(dtype):
            return "float64"
        if self.nulls and pd.api.types.is_bool_dtype(dtype):
            return object
        return dtype


class Spill:
    """Chunks of one frame in a temporary directory; `add` them in order, then replay them."""

    def __init__(self, order: list[str]) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="shipyard-spill-")
        self._order = order
        self._parts: list[Path] = []
        self._columns: dict[str, _Column] = {}
        self._last_key: pd.DataFrame | None = None
        self.rows = 0
        self.ordered = True  # every row's (order columns) key >= the previous row's

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._directory.cleanup()

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def add(self, chunk: pd.DataFrame) -> None:
        if not self._columns:
            self._columns = {name: _Column() for name in chunk.columns}
        for name in chunk.columns:
            values = chunk[name]
            seen = self._columns[name]
            present = values.notna()
            seen.nulls = seen.nulls or not present.all()
            if present.any():
                seen.dtypes.add(values.dtype)
                if values.dtype == object and seen.text_type is None:
                    seen.text_type = pa.array(values[present].iloc[:1000]).type
        if self._order and len(chunk):
            keys = chunk[self._order]
            if self._last_key is not None:
                keys = pd.concat([self._last_key, keys], ignore_index=True)
            self.ordered = self.ordered and pd.MultiIndex.from_frame(keys).is_monotonic_increasing
            self._last_key = keys.tail(1)
        part = Path(self._directory.name) / f"part-{len(self._parts):06d}.pkl"
        chunk.to_pickle(part)  # written and read by this process only
        self._parts.append(part)
        self.rows += len(chunk)

    def dtypes(self) -> pd.Series:
        return pd.Series({name: column.common_dtype() for name, column in self._columns.items()})

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema pandas' `to_parquet` gives the whole frame."""
        dtypes = self.dtypes()
        empty = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})
        schema = pa.Schema.from_pandas(empty, preserve_index=False)
        for name, column in self._columns.items():
            if pd.api.types.is_object_dtype(dtypes[name]) and column.text_type is not None:
                schema = schema.set(schema.get_field_index(name), pa.field(name, column.text_type))
        return schema

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The chunks in the order they were added, each cast to the whole frame's dtypes."""
        dtypes = self.dtypes()
        for part in self._parts:
            chunk = pd.read_pickle(part)
            changed = {name: dtype for name, dtype in dtypes.items() if chunk[name].dtype != dtype}
            yield chunk.astype(changed) if changed else chunk
