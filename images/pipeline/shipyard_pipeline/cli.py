"""`shipyard-step <step>`: one CLI per pipeline step, the same arguments in a pod and a subprocess.

Every step (drift included) takes the common arguments (spec, data interval, run id, storage
root, result path) from one parent parser; step modules are imported only when chosen, so
`ingest` does not pay for Great Expectations or MLflow imports. Exit codes
(`contract.ExitCode`): 0 ok, 3 a check failed (validation or gate: not worth a retry), 1 any
other error, with a one-line cause on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard_pipeline import storage
from shipyard_pipeline.context import RunContext, to_utc
from shipyard_pipeline.errors import StepError
from shipyard_pipeline.spec_source import resolve_spec
from shipyard_spec import SpecError
from shipyard_spec.contract import POD_RESULT_PATH, SPEC_SHA256_OPTION, Env, ExitCode, spec_sha256
from shipyard_spec.contract import Step as StepName

log = logging.getLogger("shipyard_pipeline")


def common_arguments() -> argparse.ArgumentParser:
    """The arguments every step shares (the step CLI contract in docs/architecture.md)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--spec",
        default=None,
        help=f"pipeline spec YAML file: the spec when none is handed over in ${Env.SPEC_YAML}, "
        "else a copy that must hold the same text",
    )
    parser.add_argument(
        SPEC_SHA256_OPTION,
        dest="spec_sha256",
        default=None,
        help=f"sha256 of the spec the DAG parsed; ${Env.SPEC_YAML} must hold exactly that text",
    )
    parser.add_argument("--interval-start", required=True, type=to_utc, help="data interval start, ISO-8601")
    parser.add_argument("--interval-end", required=True, type=to_utc, help="data interval end (exclusive)")
    parser.add_argument("--run-id", required=True, help="Airflow run id: keys the run's outputs in storage")
    parser.add_argument("--storage-root", required=True, help="local path or fsspec URI for all outputs")
    parser.add_argument(
        "--result-path",
        default=POD_RESULT_PATH,
        help=f"where the JSON result goes ({POD_RESULT_PATH})",
    )
    return parser


def _ingest_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="re-ingest an interval already published")


def _train_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--window-intervals",
        type=int,
        default=None,
        help="training window in intervals (default: the spec's)",
    )
    parser.add_argument("--skip-tuning", action="store_true", help="train with the spec's params, no search")


def _drift_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-root",
        default=None,
        help="prediction log root (default: $SHIPYARD_PREDICTION_LOG_URI, else {root}/prediction_logs)",
    )


@dataclass(frozen=True)
class Step:
    """A step: the module whose `run(context, **options)` does the work, and its own options."""

    module: str
    help: str
    add_options: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    options: tuple[str, ...] = ()


STEPS: dict[StepName, Step] = {
    StepName.INGEST: Step(
        "shipyard_pipeline.ingest", "copy one data interval into a snapshot", _ingest_options, ("force",)
    ),
    StepName.VALIDATE: Step("shipyard_pipeline.validate", "check the snapshot with Great Expectations"),
    StepName.TRAIN: Step(
        "shipyard_pipeline.train",
        "fit the model on the training window",
        _train_options,
        ("window_intervals", "skip_tuning"),
    ),
    StepName.EVALUATE: Step("shipyard_pipeline.evaluate", "test metrics, plots, model card and gates"),
    StepName.REGISTER: Step("shipyard_pipeline.register", "register the model version as `challenger`"),
    StepName.DRIFT: Step(
        "shipyard_pipeline.drift.step",
        "compare the champion's traffic with its reference",
        _drift_options,
        ("log_root",),
    ),
    StepName.SCORE: Step(
        "shipyard_pipeline.score",
        "score the interval's snapshot with the champion, one partition per interval",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shipyard-step", description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    common = common_arguments()
    for name, step in STEPS.items():
        step.add_options(steps.add_parser(name, parents=[common], help=step.help))
    return parser


def run_step(args: argparse.Namespace) -> dict[str, Any]:
    """Load the spec, run the chosen step, and store its result for later steps of the run."""
    step = STEPS[StepName(args.step)]
    context = RunContext(
        spec=resolve_spec(args.spec, args.spec_sha256, os.environ),
        interval_start=args.interval_start,
        interval_end=args.interval_end,
        run_id=args.run_id,
        storage_root=args.storage_root,
    )
    log.info(
        "%s %s: interval [%s, %s), run %s, spec sha256 %s",
        args.step,
        context.spec.name,
        context.interval_start.isoformat(),
        context.interval_end.isoformat(),
        context.run_id,
        spec_sha256(context.spec.source_text or "")[:12],  # as the DAG's doc shows it
    )
    module = importlib.import_module(step.module)
    result = module.run(context, **{name: getattr(args, name) for name in step.options})
    storage.write_json(context.step_result_uri(args.step), result)
    return result


def write_result(path: str, result: dict[str, Any]) -> None:
    """The result file the runner reads (XCom), renamed into place so it is never half-written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(json.dumps(result, default=str))
    partial.replace(target)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("great_expectations", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        result = run_step(args)
        write_result(args.result_path, result)
    except SpecError as e:
        return _fail(
            args.step, "; ".join(f"{f}: {p}" for f, p in e.problems) + f" ({e.source})", ExitCode.ERROR
        )
    except StepError as e:
        return _fail(args.step, str(e), e.exit_code)
    except Exception as e:
        log.exception("%s failed unexpectedly", args.step)
        return _fail(args.step, f"{type(e).__name__}: {e}", ExitCode.ERROR)
    log.info("%s done: %s", args.step, json.dumps(result, default=str))
    return ExitCode.OK


def _fail(step: str, cause: str, code: int) -> int:
    print(f"shipyard-step {step}: {' '.join(cause.split())}", file=sys.stderr)
    return code
