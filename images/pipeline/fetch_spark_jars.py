"""Fetch the pinned Spark jars (images/pipeline/spark-jars.txt: JDBC drivers, S3A) into a directory,
checking each sha256.

    python fetch_spark_jars.py <spark-jars.txt> <directory>

Standard library only: `make spark` runs it with any Python, the image's spark stage with the base
image's. A jar already present with the pinned hash is kept; one with another hash is fetched again;
a download whose hash differs is refused (nothing is left in the directory).
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import urllib.request
from pathlib import Path


def pinned(listing: Path) -> list[tuple[str, str]]:
    lines = (line.strip() for line in listing.read_text().splitlines())
    return [tuple(line.split()) for line in lines if line and not line.startswith("#")]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, expected: str, directory: Path) -> Path:
    target = directory / url.rsplit("/", 1)[1]
    if target.exists() and sha256(target) == expected:
        return target
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".part", delete=False) as part:
        partial = Path(part.name)
        with urllib.request.urlopen(url, timeout=120) as response:
            while block := response.read(1 << 20):
                part.write(block)
    found = sha256(partial)
    if found != expected:
        partial.unlink()
        raise SystemExit(f"{url}: sha256 {found}, pinned {expected}")
    partial.replace(target)
    return target


def main(listing: str, directory: str) -> None:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for url, expected in pinned(Path(listing)):
        print(fetch(url, expected, out))


if __name__ == "__main__":
    main(*sys.argv[1:])
