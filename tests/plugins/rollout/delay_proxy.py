"""FAULT INJECTION for the front-door latency test: a TCP relay that holds every prediction
request for a fixed time before passing it on to the predictor.

It stands for what a client waits for in front of a model server — queueing, a proxy,
request parsing — none of which the predictor's own request histogram sees. Only requests
starting with `POST` are held, so HAProxy's health checks (`GET`) see a healthy predictor.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while chunk := await reader.read(65536):
            if delay and chunk.startswith(b"POST"):
                await asyncio.sleep(delay)
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass  # either side went away: the other side's pipe closes the connection
    finally:
        writer.close()


@contextlib.contextmanager
def delay_proxy(upstream_port: int, delay_seconds: float) -> Iterator[int]:
    """A relay on a free port to 127.0.0.1:`upstream_port`, holding each POST for `delay_seconds`."""
    loop = asyncio.new_event_loop()

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except ConnectionRefusedError:  # the predictor is gone: refuse the client the same way
            client_writer.close()
            return
        await asyncio.gather(
            _pipe(client_reader, upstream_writer, delay_seconds),
            _pipe(upstream_reader, client_writer, 0),
        )

    server = loop.run_until_complete(asyncio.start_server(relay, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
