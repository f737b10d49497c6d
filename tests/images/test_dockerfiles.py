"""The Dockerfiles, checked without a Docker engine (there is none on these machines).

What a build would need is checked piece by piece: pinned bases, COPY sources that exist and
pass the Dockerfile's .dockerignore, the lock file installing completely with --no-deps into a
clean virtualenv (the build stage emulated: its COPY instructions replayed into tmp_path, uv
instead of pip), the entrypoint console script that install produces, a non-root USER.
Runs in the Airflow virtualenv (standard library + tomllib + uv).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UV = REPO / ".venv" / "bootstrap" / "bin" / "uv"
PYTHON = os.environ.get("SHIPYARD_PYTHON", "/root/.pyenv/versions/3.12.1/bin/python3.12")
IMAGES = ("pipeline", "serving", "airflow")
# The base each image must start from: an exact release, never a floating tag.
PINNED_BASES = {
    "pipeline": r"python:3\.12\.\d+-slim-bookworm",
    "serving": r"python:3\.12\.\d+-slim-bookworm",
    "airflow": r"apache/airflow:\d+\.\d+\.\d+-python3\.12",
}
ENTRYPOINTS = {
    "pipeline": ("images/pipeline", "shipyard-step"),
    "serving": ("images/serving", "shipyard-predictor"),
}
IGNORED_BY_GIT = ("__pycache__", ".egg-info")


def instructions(image: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of a Dockerfile, continuation lines joined, comments dropped."""
    text = (REPO / "images" / image / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for line in joined.splitlines()
        if (parts := line.strip().split(None, 1))
    ]


def copies(image: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not from another stage)."""
    found = []
    for name, args in instructions(image):
        if name != "COPY":
            continue
        words = args.split()
        if any(w.startswith("--from=") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")]
        found.append((paths[:-1], paths[-1]))
    return found


def ignore_patterns(image: str) -> list[str]:
    path = REPO / "images" / image / "Dockerfile.dockerignore"
    return [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def pattern_matches(pattern: str, path: str) -> bool:
    """Docker's rule: a pattern matches a path or any of its parent directories; `**` spans directories."""
    regex = (
        re.escape(pattern.strip("/"))
        .replace(r"\*\*/", "(.*/)?")
        .replace(r"\*\*", ".*")
        .replace(r"\*", "[^/]*")
    )
    parts = path.split("/")
    return any(re.fullmatch(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1))


def in_context(image: str, path: str) -> bool:
    """Whether the build context sent to Docker contains `path` (last matching pattern wins)."""
    included = True
    for pattern in ignore_patterns(image):
        negated = pattern.startswith("!")
        if pattern_matches(pattern.lstrip("!"), path):
            included = negated
    return included


def context_files(source: str) -> list[str]:
    """Repository files a COPY source names (a file, or every file under a directory)."""
    path = REPO / source
    if path.is_file():
        return [source]
    return [
        str(p.relative_to(REPO))
        for p in sorted(path.rglob("*"))
        if p.is_file() and not any(part.endswith(IGNORED_BY_GIT) for part in p.parts)
    ]


@pytest.mark.parametrize("image", IMAGES)
class TestDockerfile:
    def test_external_base_is_pinned_to_a_release(self, image):
        stages: list[str] = []
        for name, args in instructions(image):
            if name != "FROM":
                continue
            words = args.split()
            base = words[0]
            if base not in stages:
                assert re.fullmatch(PINNED_BASES[image], base), f"{image}: unpinned base {base}"
            if len(words) == 3 and words[1].upper() == "AS":
                stages.append(words[2])

    def test_every_copy_source_exists_and_is_in_the_build_context(self, image):
        for sources, _ in copies(image):
            for source in sources:
                assert (REPO / source).exists(), f"{image}: COPY source {source} does not exist"
                files = context_files(source)
                assert files, f"{image}: COPY source {source} is empty"
                excluded = [f for f in files if not in_context(image, f)]
                assert excluded == [], f"{image}: .dockerignore drops files COPY needs"

    def test_dockerignore_keeps_everything_else_out(self, image):
        copied = {source for sources, _ in copies(image) for source in sources}
        for path in ("README.md", "tests/conftest.py", ".venv/bin/python", "Makefile"):
            assert path in copied or not in_context(image, path), path

    def test_runs_as_a_non_root_user(self, image):
        users = [args for name, args in instructions(image) if name == "USER"]
        assert users, f"{image}: no USER"
        uid = users[-1].split(":")[0]
        assert uid.isdigit(), (
            f"{image}: final USER {users[-1]} must be numeric (Kubernetes checks runAsNonRoot)"
        )
        assert int(uid) > 0, f"{image}: final USER {users[-1]} is root"

    def test_no_secrets_in_build_arguments_or_environment(self, image):
        for name, args in instructions(image):
            if name in {"ARG", "ENV"}:
                assert not re.search(r"(PASSWORD|SECRET|TOKEN|_KEY)\w*=", args, re.I), f"{image}: {args}"

    def test_installs_the_lock_file_without_resolving(self, image):
        locks = [dest for sources, dest in copies(image) for s in sources if s.endswith("requirements.txt")]
        assert len(locks) == 1, f"{image}: expected one lock file COPY, found {locks}"
        runs = " ".join(args for name, args in instructions(image) if name == "RUN")
        assert re.search(rf"pip install [^&]*--no-deps -r {re.escape(locks[0])}", runs), runs


@pytest.mark.parametrize("image", ["pipeline", "serving"])
def test_entrypoint_is_the_packages_console_script(image):
    package_dir, script = ENTRYPOINTS[image]
    [entrypoint] = [json.loads(args) for name, args in instructions(image) if name == "ENTRYPOINT"]
    assert entrypoint == [script]
    pyproject = tomllib.loads((REPO / package_dir / "pyproject.toml").read_text())
    target = pyproject["project"]["scripts"][script]
    module, function = target.split(":")
    source = REPO / package_dir / (module.replace(".", "/") + ".py")
    assert source.is_file(), f"{script} -> {target}: {source.relative_to(REPO)} does not exist"
    assert re.search(rf"^def {function}\(", source.read_text(), re.M), f"{target}: no function {function}"


@pytest.mark.parametrize("image", IMAGES)
def test_build_stage_installs_into_a_clean_virtualenv(image, tmp_path):
    """Replay the context COPYs into tmp_path, install as the build stage does (uv for pip, cached wheels)."""
    root = tmp_path / "image"
    for sources, dest in copies(image):
        for source in sources:
            target = root / dest.lstrip("/")
            if (REPO / source).is_dir():
                shutil.copytree(
                    REPO / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
                )
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / source, target)
    locks = [p for p in root.rglob("*requirements.txt")]
    packages = sorted(str(p.parent) for p in root.rglob("pyproject.toml"))
    venv = tmp_path / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", PYTHON, str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = [
        str(UV),
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--python",
        python,
        "-r",
        str(locks[0]),
        *packages,
    ]
    result = subprocess.run(install, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    check = subprocess.run(
        [str(UV), "pip", "check", "--python", python], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, f"{image}: the lock file is incomplete:\n{check.stdout}{check.stderr}"
    if image in ENTRYPOINTS:
        assert (venv / "bin" / ENTRYPOINTS[image][1]).exists()
        # Every first-party package the image's code imports (the shared contract module included)
        # is installed by the Dockerfile, not only the image's own package.
        package_dir = REPO / ENTRYPOINTS[image][0]
        imported = sorted(first_party_imports(package_dir))
        probe = "import importlib.util as u, sys; print([n for n in sys.argv[1:] if not u.find_spec(n)])"
        missing = subprocess.run(
            [python, "-c", probe, *imported], capture_output=True, text=True, check=True, cwd=tmp_path
        ).stdout.strip()
        assert missing == "[]", f"{image}: the Dockerfile does not install {missing}, which its code imports"


def first_party_imports(package_dir: Path) -> set[str]:
    """Top-level `shipyard*` packages imported anywhere under an image's package directory."""
    names: set[str] = set()
    for path in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {name for name in names if name.startswith("shipyard")}


def test_first_party_imports_are_found_in_the_image_packages():
    assert first_party_imports(REPO / "images" / "pipeline") >= {"shipyard_pipeline", "shipyard_spec"}
    assert "shipyard_serving" in first_party_imports(REPO / "images" / "serving")


def test_dockerignore_patterns_follow_docker_semantics():
    assert pattern_matches("*", "images/pipeline/requirements.txt")
    assert pattern_matches("images/pipeline/shipyard_pipeline", "images/pipeline/shipyard_pipeline/a/b.py")
    assert pattern_matches("**/__pycache__", "spec/shipyard_spec/__pycache__/x.pyc")
    assert not pattern_matches("images/serving", "images/pipeline/Dockerfile")
