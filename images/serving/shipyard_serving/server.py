"""kserve's model server with Shipyard's front door: request limits, request metrics, one-line client errors.

kserve 0.21 builds its FastAPI application inside `RESTServer.create_application()`, in the
serving process itself (and again in every worker process with `--workers N`, which receive
the REST server pickled). `ShipyardRESTServer` adds to that application, so every worker gets
the same layers:

    RequestMetricsMiddleware   outcome + whole duration of every prediction request (metrics.py)
    RequestLimitMiddleware     body size and read-time limits before anything parses (limits.py)
    kserve's middlewares, routes and exception handlers, with the client-error handlers replaced (errors.py)

`ShipyardModelServer.start` is kserve's `ModelServer.start` with these REST servers in place
of kserve's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import fastapi
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess
from kserve.protocol.rest.server import RESTServer

from kserve import model_server
from shipyard_serving.errors import CLIENT_ERRORS, client_error_handler
from shipyard_serving.limits import RequestLimitMiddleware, RequestLimits
from shipyard_serving.metrics import RequestMetricsMiddleware, ServedModel


@dataclass(frozen=True)
class FrontDoor:
    served: ServedModel
    limits: RequestLimits


class ShipyardRESTServer(RESTServer):
    def __init__(self, *args: Any, front_door: FrontDoor, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.front_door = front_door

    def _add_middlewares(self, app: fastapi.FastAPI) -> None:
        super()._add_middlewares(app)
        # Starlette runs the last one added first.
        app.add_middleware(RequestLimitMiddleware, limits=self.front_door.limits)
        app.add_middleware(RequestMetricsMiddleware, served=self.front_door.served)

    def _add_exception_handlers(self, app: fastapi.FastAPI) -> None:
        super()._add_exception_handlers(app)
        for error, status in CLIENT_ERRORS.items():
            app.add_exception_handler(error, client_error_handler(status))


class ShipyardRESTServerMultiProcess(RESTServerMultiProcess):
    """kserve's worker-process supervisor, running ShipyardRESTServer in every worker."""

    def __init__(self, rest_server: ShipyardRESTServer, log_config_file: str | None):
        config = rest_server.config
        super().__init__(
            FASTAPI_APP_IMPORT_STRING,
            rest_server.dataplane,
            rest_server.model_repository_extension,
            config.port,
            workers=config.workers,
            log_config_file=log_config_file,
        )
        self._rest_server = rest_server


class ShipyardModelServer(model_server.ModelServer):
    def __init__(self, front_door: FrontDoor, log_config_file: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.front_door = front_door
        self.log_config_file = log_config_file

    def start(self, models: list[Any]) -> None:
        """kserve's ModelServer.start, with ShipyardRESTServer (and its multi-process supervisor)."""
        self._register_and_check_atleast_one_model_is_ready(models)
        rest_server = ShipyardRESTServer(
            FASTAPI_APP_IMPORT_STRING,
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            access_log_format=self.access_log_format,
            workers=self.workers,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
            front_door=self.front_door,
        )
        if self.workers > 1:
            self._rest_multiprocess_server = ShipyardRESTServerMultiProcess(rest_server, self.log_config_file)
            self.servers.append(self._rest_multiprocess_server.start())
        else:
            self._rest_server = rest_server
            self.servers.append(rest_server.start())
        if self.enable_grpc:
            self._grpc_server = GRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs=vars(model_server.args),
                grace_period=self.grace_period,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())
