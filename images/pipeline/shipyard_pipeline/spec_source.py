"""Which spec a step runs: the one the DAG parsed, handed over in the environment.

The Airflow side passes the spec's YAML text in `$SHIPYARD_SPEC_YAML` (`contract.Env.SPEC_YAML`)
and its sha256 as `--spec-sha256` (both runners, `plugins/shipyard/step_command.py`). The step
runs that text and nothing else: a text whose hash is not the one on the command line was cut or
replaced on the way, and a spec file also named with `--spec` must hold the same text, so a step
never runs a copy that differs from what the DAG showed. `--spec FILE` alone (no hand-over) is
for running a step by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from shipyard_pipeline.errors import StepError
from shipyard_spec import PipelineSpec, load_spec, loads_spec
from shipyard_spec.contract import SPEC_SHA256_OPTION, Env, spec_sha256


def resolve_spec(path: str | None, expected_sha256: str | None, environ: Mapping[str, str]) -> PipelineSpec:
    """The spec to run, from the hand-over (`environ`) or, without one, from the file `path`."""
    text = environ.get(Env.SPEC_YAML)
    if text is None:
        if expected_sha256 is not None:
            raise StepError(
                f"{SPEC_SHA256_OPTION} {expected_sha256} names the spec the DAG parsed, "
                f"but ${Env.SPEC_YAML} is not set: the runner did not hand the spec over"
            )
        if path is None:
            raise StepError(f"no spec: give --spec FILE, or the spec's text in ${Env.SPEC_YAML}")
        return load_spec(path)
    digest = spec_sha256(text)
    if expected_sha256 is not None and digest != expected_sha256:
        raise StepError(
            f"${Env.SPEC_YAML} has sha256 {digest} but the DAG parsed sha256 {expected_sha256} "
            f"({SPEC_SHA256_OPTION}): the spec was cut or replaced on its way to the step"
        )
    if path is not None:
        on_disk = spec_sha256(Path(path).read_text(encoding="utf-8"))
        if on_disk != digest:
            raise StepError(
                f"spec file {path} has sha256 {on_disk}, but the DAG parsed sha256 {digest}: "
                "this copy is stale or was edited since; the step runs only the spec the DAG parsed"
            )
    return loads_spec(text, f"${Env.SPEC_YAML} (sha256 {digest[:12]})")
