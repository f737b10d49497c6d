"""Live shadow mirroring by the predictor: a challenger that hangs or is gone costs clients nothing.

The real predictor mirrors to a TCP server that accepts connections and never answers (a hung
challenger), with a queue of 2: every client request is still answered 200 at once, the copies
that do not fit are dropped and counted, the hung ones fail after the mirror's timeout and are
counted; with a challenger that refuses connections, every copy fails fast and is counted.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from conftest import MODEL_NAME, Trained, predictor_process
from prometheus_client.parser import text_string_to_metric_families
from support.servers import free_port

from shipyard_spec.contract import Env, Metric, ShadowOutcome


@contextlib.contextmanager
def hung_server() -> Iterator[str]:
    """Accepts connections, reads nothing, answers nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def mirror_counters(predictor) -> dict[str, float]:
    _, text = predictor.get("/metrics")
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == Metric.SHADOW_REQUESTS
    }


def test_a_hung_challenger_drops_copies_and_never_delays_a_client(
    trained: Trained, rows, tmp_path, monkeypatch
):
    with hung_server() as url:
        monkeypatch.setenv(Env.SHADOW_MIRROR_URL, url)
        monkeypatch.setenv(Env.SHADOW_MIRROR_VERSION, "8")
        monkeypatch.setenv(Env.SHADOW_MIRROR_QUEUE_SIZE, "2")
        with predictor_process(trained.model_dir, tmp_path) as predictor:
            started = time.monotonic()
            statuses = [
                predictor.post(f"/v1/models/{MODEL_NAME}:predict", {"instances": rows(i, i + 1)})[0]
                for i in range(40)
            ]
            elapsed = time.monotonic() - started
            counters = mirror_counters(predictor)
    assert statuses == [200] * 40
    assert elapsed < 30  # 40 requests; one mirrored copy alone waits 5 s for the hung challenger
    # The queue holds 2 and the sender waits up to 5 s on each hung call, so copies are dropped (how
    # many depends on the machine's pace: a loaded one sends fewer requests per timeout).
    assert counters[ShadowOutcome.DROPPED] > 0
    assert counters[ShadowOutcome.PAIRED] == 0


def test_a_challenger_that_is_gone_fails_every_copy_and_no_request(
    trained: Trained, rows, tmp_path, monkeypatch
):
    monkeypatch.setenv(Env.SHADOW_MIRROR_URL, f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv(Env.SHADOW_MIRROR_VERSION, "8")
    with predictor_process(trained.model_dir, tmp_path) as predictor:
        statuses = [
            predictor.post(f"/v1/models/{MODEL_NAME}:predict", {"instances": rows(i, i + 2)})[0]
            for i in range(20)
        ]
        deadline = time.monotonic() + 10
        while mirror_counters(predictor).get(ShadowOutcome.FAILED, 0) < 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        counters = mirror_counters(predictor)
    assert statuses == [200] * 20
    assert counters == {ShadowOutcome.PAIRED: 0, ShadowOutcome.DROPPED: 0, ShadowOutcome.FAILED: 20}
