"""`shipyard-predictor` / `python -m shipyard_serving`: serve one Shipyard model version.

    shipyard-predictor --model_name telco_churn --model_dir /mnt/models --http_port 8080 [--model_version 3]

Every kserve model server argument is accepted (the parser extends `kserve.model_server.parser`);
the defaults differ where kserve's cost time per request without serving Shipyard: gRPC is off
(`--enable_grpc true` turns it on) and per-request latency/access log lines are off (logging.yaml).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from importlib import resources

from kserve.utils.utils import strtobool

from kserve import logging as kserve_logging
from kserve import model_server
from shipyard_serving.limits import DEFAULT_BODY_TIMEOUT_SECONDS, DEFAULT_MAX_BODY_BYTES, RequestLimits
from shipyard_spec.contract import Env

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shipyard-predictor", parents=[model_server.parser], description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model_dir", required=True, help="MLflow model directory (MLmodel, model.pkl, ...)")
    parser.add_argument(
        "--model_version",
        default=os.environ.get(Env.MODEL_VERSION, "unknown"),
        help=f"registered model version: label of every metric and log record (env {Env.MODEL_VERSION})",
    )
    parser.add_argument("--max_batch_size", type=int, default=1000, help="most rows accepted in one request")
    parser.add_argument(
        "--max_request_bytes",
        type=int,
        default=os.environ.get(Env.MAX_REQUEST_BYTES, DEFAULT_MAX_BODY_BYTES),  # type-checked by argparse
        help=f"largest request body read; larger ones get 413 before parsing (env {Env.MAX_REQUEST_BYTES})",
    )
    parser.add_argument(
        "--request_body_timeout_seconds",
        type=float,
        default=DEFAULT_BODY_TIMEOUT_SECONDS,
        help="a request body not received within this time gets 408",
    )
    parser.add_argument(
        "--nthread",
        type=int,
        default=1,
        help="threads per worker for XGBoost/OpenMP (scale with --workers instead)",
    )
    parser.add_argument(
        "--fast_path",
        type=strtobool,
        default=True,
        help="serve the numpy fast path when it proves parity at load",
    )
    parser.add_argument(
        "--prediction_log_uri",
        default=os.environ.get(Env.PREDICTION_LOG_URI),
        help=f"root (local path or fsspec URI) of the sampled prediction log (env {Env.PREDICTION_LOG_URI}); "
        "unset = no log",
    )
    parser.add_argument(
        "--prediction_log_sample_rate", type=float, default=0.1, help="share of rows logged, 0..1"
    )
    parser.add_argument(
        "--prediction_log_flush_seconds", type=float, default=10.0, help="seconds per log part file"
    )
    parser.add_argument(
        "--prediction_log_max_bytes",
        type=int,
        default=512 * 1024 * 1024,
        help="size kept of this model's log; the oldest parts beyond it are deleted",
    )
    parser.add_argument(
        "--prediction_log_retention_days",
        type=int,
        default=14,
        help="days kept of this model's log (by date partition); older parts are deleted",
    )
    faults = parser.add_argument_group("fault injection (canary tests only; off by default)")
    faults.add_argument(
        "--fault_error_rate", type=float, default=0.0, help="share of requests answered with a 500"
    )
    faults.add_argument("--fault_latency_ms", type=float, default=0.0, help="latency added to every request")
    faults.add_argument(
        "--fault_never_ready", action="store_true", help="load the model but never report ready"
    )
    parser.set_defaults(
        enable_grpc=False,
        enable_latency_logging=False,
        log_config_file=str(resources.files("shipyard_serving") / "logging.yaml"),
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # Before xgboost is imported and before workers are spawned (they inherit the environment).
    for variable in THREAD_VARIABLES:
        os.environ.setdefault(variable, str(args.nthread))
    kserve_logging.configure_logging(args.log_config_file)
    # kserve's multi-worker server configures its workers' logging from its import-time args.
    model_server.args.log_config_file = args.log_config_file
    metrics_dir = None
    if args.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        metrics_dir = tempfile.mkdtemp(prefix="shipyard-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # read by the workers' metrics.py, see there

    # Imported only now: xgboost reads the thread variables set above when it loads.
    from shipyard_serving.dataplane import ShipyardDataPlane
    from shipyard_serving.faults import Faults
    from shipyard_serving.metrics import ServedModel
    from shipyard_serving.mirror import MirrorSettings, ShadowMirror
    from shipyard_serving.prediction_log import PredictionLog, Retention
    from shipyard_serving.predictor import Settings, ShipyardModel
    from shipyard_serving.server import FrontDoor, ShipyardModelServer

    prediction_log = None
    if args.prediction_log_uri:
        prediction_log = PredictionLog(
            args.prediction_log_uri,
            args.model_name,
            args.model_version,
            args.prediction_log_sample_rate,
            Retention(args.prediction_log_max_bytes, args.prediction_log_retention_days),
            flush_seconds=args.prediction_log_flush_seconds,
        )
    mirror_settings = MirrorSettings.from_env()
    mirror = (
        ShadowMirror(mirror_settings, args.model_name, args.model_version, args.prediction_log_uri)
        if mirror_settings
        else None
    )
    model = ShipyardModel(
        args.model_name,
        Settings(args.model_dir, args.model_version, args.max_batch_size, args.nthread, args.fast_path),
        prediction_log=prediction_log,
        faults=Faults(args.fault_error_rate, args.fault_latency_ms, args.fault_never_ready),
        mirror=mirror,
    )
    model.load()
    server = ShipyardModelServer(
        FrontDoor(
            ServedModel(args.model_name, args.model_version),
            RequestLimits(args.max_request_bytes, args.request_body_timeout_seconds),
        ),
        log_config_file=args.log_config_file,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        max_threads=args.max_threads,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
    )
    server.dataplane = ShipyardDataPlane(model_registry=server.registered_models)
    # Registered directly rather than through start([model]): kserve refuses to start without a
    # ready model, and `--fault_never_ready` must serve health endpoints while never being ready.
    server.register_model(model)
    try:
        server.start([])
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
