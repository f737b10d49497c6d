"""Reading and writing under the storage root through fsspec (local paths, s3://, gs://, ...).

Everything a later step or a reader trusts is published last and in one operation: a file is
written under a temporary name and moved into place, so a crash never leaves a half-written
file under the final name (on object stores a single PUT is already atomic).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import fsspec
from fsspec import AbstractFileSystem


def filesystem(uri: str) -> tuple[AbstractFileSystem, str]:
    """The filesystem and the path inside it for a local path or an fsspec URI."""
    return fsspec.core.url_to_fs(uri)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


def write_bytes_atomic(uri: str, data: bytes) -> None:
    """Write `data` to `uri` so that readers see either nothing or the whole file."""
    fs, path = filesystem(uri)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    temporary = f"{parent}/.tmp-{uuid.uuid4().hex}"
    fs.pipe_file(temporary, data)
    fs.mv(temporary, path)


def write_json(uri: str, payload: Any) -> None:
    write_bytes_atomic(uri, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())


def write_text(uri: str, text: str) -> None:
    write_bytes_atomic(uri, text.encode())


def read_json(uri: str) -> Any:
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as handle:
        return json.load(handle)


def remove(uri: str) -> None:
    fs, path = filesystem(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def list_dirs(uri: str) -> list[str]:
    """Names of the sub-directories of `uri` (empty when it does not exist)."""
    fs, path = filesystem(uri)
    if not fs.exists(path):
        return []
    return sorted(
        entry["name"].rstrip("/").rsplit("/", 1)[-1]
        for entry in fs.ls(path, detail=True)
        if entry["type"] == "directory"
    )
