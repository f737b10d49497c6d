"""Client errors answered with one log line each, not kserve's traceback.

kserve's handlers log `logger.error("Exception:", exc_info=exc)` for every 4xx: a ~3 KB
traceback per bad request, which a misbehaving client turns into gigabytes of log. A client
error is not a server fault: these handlers log one WARNING line (status, method, path,
reason) and answer `{"error": reason}` as kserve does. Server errors keep kserve's handlers
and their tracebacks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from kserve.errors import InvalidInput, ModelNotFound

log = logging.getLogger(__name__)

Handler = Callable[[Request, Exception], Awaitable[ORJSONResponse]]


def _reason(error: Exception) -> str:
    if isinstance(error, RequestValidationError):
        # FastAPI's detail lists every failed field; one line, the first few fields.
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
    return str(error)


def client_error_handler(status: HTTPStatus) -> Handler:
    async def handle(request: Request, error: Exception) -> ORJSONResponse:
        reason = _reason(error)
        log.warning("client error %d %s %s: %s", status, request.method, request.url.path, reason)
        return ORJSONResponse(status_code=int(status), content={"error": reason})

    return handle


CLIENT_ERRORS: dict[type[Exception], HTTPStatus] = {
    InvalidInput: HTTPStatus.BAD_REQUEST,
    ModelNotFound: HTTPStatus.NOT_FOUND,
    # A V2 document that does not match the V2 schema (FastAPI answers 422 by default).
    RequestValidationError: HTTPStatus.BAD_REQUEST,
}
