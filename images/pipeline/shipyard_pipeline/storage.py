"""Reading and writing under the storage root through fsspec (local paths, s3://, gs://, ...).

Everything a later step or a reader trusts is published last and in one operation, so a crash
never leaves a half-written file under the final name: on a local filesystem a file is written
under a temporary name and renamed into place; on an object store a single PUT (or a completed
multipart upload) is already atomic, and a rename would be a copy plus a delete.

Object stores: `s3://bucket/prefix` through s3fs. The endpoint of an S3-compatible store
comes from `AWS_ENDPOINT_URL_S3` (`contract.Env.S3_ENDPOINT_URL`), which botocore reads
itself; credentials from the standard AWS variables or the pod's workload identity. Nothing
here names an endpoint or a key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from shipyard_spec import contract


def filesystem(uri: str) -> tuple[AbstractFileSystem, str]:
    """The filesystem and the path inside it for a local path or an fsspec URI."""
    return fsspec.core.url_to_fs(uri)


join = contract.join


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


def write_bytes_atomic(uri: str, data: bytes) -> None:
    """Write `data` to `uri` so that readers see either nothing or the whole file."""
    _write_atomic(uri, lambda fs, path: fs.pipe_file(path, data))


def _write_atomic(uri: str, put: Callable[[AbstractFileSystem, str], None]) -> None:
    fs, path = filesystem(uri)
    if not isinstance(fs, LocalFileSystem):
        put(fs, path)  # one PUT (or a completed multipart upload): the old object or the new one
        return
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    temporary = f"{parent}/.tmp-{uuid.uuid4().hex}"
    put(fs, temporary)
    fs.mv(temporary, path)


def write_json(uri: str, payload: Any) -> None:
    write_bytes_atomic(uri, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())


def write_text(uri: str, text: str) -> None:
    write_bytes_atomic(uri, text.encode())


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    return fs.cat_file(path)


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def upload_file(local_path: str, uri: str) -> None:
    """Copy one local file to `uri`, atomically as `write_bytes_atomic` does, streamed from disk."""
    _write_atomic(uri, lambda fs, path: fs.put_file(local_path, path))


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
