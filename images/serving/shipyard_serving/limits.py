"""Request limits enforced before anything parses a body: size (413) and read time (408).

kserve 0.21 and uvicorn read a request body without bound: a 234 MB body took the predictor
to 1.7 GB RSS before the batch limit could reject it, and a declared Content-Length that
never arrives holds the connection forever. This ASGI middleware sits in front of kserve's
application and reads the body itself:

- a `Content-Length` above the limit (or not a number) is answered 413 / 400 at once, before a
  single body byte is read (and before uvicorn sends `100 Continue`);
- the body is read chunk by chunk, chunked transfer encoding included, and reading stops
  with a 413 as soon as the bytes received pass the limit, so at most `max_body_bytes` (plus
  one chunk) is ever held;
- the whole body must arrive within `body_timeout_seconds`, else 408.

The body read is then replayed to kserve as one message. Answers carry `connection: close`
so the unread rest of a refused body is never parsed as a next request.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson

log = logging.getLogger(__name__)

# The chart's predictor memory limit (charts/shipyard/values.yaml, servingRuntime.resources).
CHART_MEMORY_LIMIT_BYTES = 1 << 30
# Decoding JSON into Python objects costs about 7x the body: measured, a 12 MiB body of 27,000
# Telco rows took the predictor from 246 MiB (model loaded, idle) to a 337 MiB peak before the
# batch limit refused it. 1/64 of the limit (16 MiB, 25x the default --max_batch_size in rows)
# therefore peaks near 120 MiB per request, so several maximum requests in flight fit in 1 GiB.
DEFAULT_MAX_BODY_BYTES = CHART_MEMORY_LIMIT_BYTES // 64
DEFAULT_BODY_TIMEOUT_SECONDS = 10.0


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


@dataclass(frozen=True)
class RequestLimits:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if self.max_body_bytes <= 0 or self.body_timeout_seconds <= 0:
            raise ValueError(f"request limits must be positive: {self}")


class RequestLimitMiddleware:
    """ASGI middleware: read the body within the limits, then hand it to `app`."""

    def __init__(self, app: Any, limits: RequestLimits):
        self.app = app
        self.limits = limits

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and not (declared.isascii() and declared.isdigit()):
            await refuse(send, scope, HTTPStatus.BAD_REQUEST, f"Content-Length {declared!r} is not a number")
            return
        if declared is not None and int(declared) > self.limits.max_body_bytes:
            await self._too_large(send, scope, f"Content-Length {declared}")
            return
        try:
            async with asyncio.timeout(self.limits.body_timeout_seconds):
                body = await self._read(receive)
        except _TooLarge:
            await self._too_large(send, scope, "the body received so far")
            return
        except TimeoutError:
            await refuse(
                send,
                scope,
                HTTPStatus.REQUEST_TIMEOUT,
                f"request body not received within {self.limits.body_timeout_seconds:g} s "
                f"(declared Content-Length {declared})",
            )
            return
        except _Disconnected:
            return  # the client left before sending its body: nobody to answer
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for the client to disconnect
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, receive: Any) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, send: Any, scope: dict[str, Any], what: str) -> None:
        await refuse(
            send,
            scope,
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"{what} exceeds the request size limit of {self.limits.max_body_bytes} bytes "
            "(--max_request_bytes); send fewer rows per request",
        )


async def refuse(send: Any, scope: dict[str, Any], status: HTTPStatus, reason: str) -> None:
    """Answer `status` with `{"error": reason}`, close the connection, and log one line."""
    log.warning("client error %d %s %s: %s", status, scope.get("method"), scope.get("path"), reason)
    body = orjson.dumps({"error": reason})
    await send(
        {
            "type": "http.response.start",
            "status": int(status),
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: dict[str, Any]) -> str | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.decode("latin-1").strip()
    return None
