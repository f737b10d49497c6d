"""BENCHMARK CEILING ONLY: a kserve model that answers a constant, to measure the server's own cost.

    ceiling_predictor.py --model_name m --http_port P --workers 2 [--front_door true]

No decoding, no validation, no scoring: `predict` returns `{"predictions": [0.5]}` whatever
the body holds (kserve's data plane still parses the JSON body, as for any V1 model), and a
one-value V2 response to a V2 request (gRPC `ModelInfer`, which kserve parses into an
`InferRequest`). What
`run.py` measures with it is the most a kserve ModelServer can answer on this machine with
the same workers, log settings and load as Shipyard's predictor.

With `--front_door true` the same constant model is served by Shipyard's `ShipyardModelServer`
(request limits + request metrics ASGI layers, Shipyard's data plane and client-error
handlers), so the difference between the two ceilings is what the front door costs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.utils.utils import strtobool

from kserve import Model, ModelServer, model_server

CONSTANT = {"predictions": [0.5]}


class ConstantModel(Model):
    def __init__(self, name: str):
        super().__init__(name)
        self.ready = True

    async def predict(
        self, payload: dict | InferRequest, headers: dict[str, str] | None = None
    ) -> dict | InferResponse:
        if not isinstance(payload, InferRequest):
            return CONSTANT
        output = InferOutput("probability", [1], "FP64", data=CONSTANT["predictions"])
        return InferResponse(payload.id, self.name, infer_outputs=[output])


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--front_door", type=strtobool, default=False)
    args = parser.parse_args()
    model_server.args.log_config_file = args.log_config_file
    server_args = {
        "http_port": args.http_port,
        "grpc_port": args.grpc_port,
        "workers": args.workers,
        "enable_grpc": args.enable_grpc,
        "enable_latency_logging": args.enable_latency_logging,
    }
    if not args.front_door:
        ModelServer(**server_args).start([ConstantModel(args.model_name)])
        return
    # As shipyard_serving.__main__ does: the workers' metrics are summed through this directory,
    # which must be set before shipyard_serving.metrics is imported.
    metrics_dir = tempfile.mkdtemp(prefix="shipyard-ceiling-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from shipyard_serving.dataplane import ShipyardDataPlane
    from shipyard_serving.limits import RequestLimits
    from shipyard_serving.metrics import ServedModel
    from shipyard_serving.server import FrontDoor, ShipyardModelServer

    server = ShipyardModelServer(
        FrontDoor(ServedModel(args.model_name, "ceiling"), RequestLimits()),
        log_config_file=args.log_config_file,
        **server_args,
    )
    server.dataplane = ShipyardDataPlane(model_registry=server.registered_models)
    try:
        server.start([ConstantModel(args.model_name)])
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
