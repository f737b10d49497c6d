"""The load driver sends every row of the example — missing values as JSON null — and counts the
outcome of every request, including those that never got an answer."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from http_stub import QuietHandler, http_server
from support.servers import free_port

from shipyard.rollout.local.load import LoadDriver, load_records


def refuse_nan(constant: str) -> float:
    raise ValueError(f"{constant} is not JSON")


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict]]]:
    """A server answering 200 to valid JSON and 400 otherwise; yields (URL, bodies received)."""
    received: list[dict] = []

    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                received.append(json.loads(raw, parse_constant=refuse_nan))
                status = 200
            except ValueError:
                status = 400
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with http_server(Handler) as url:
        yield url, received


def test_rows_with_missing_values_are_sent_as_null_and_every_outcome_counted(recorder, tmp_path):
    url, received = recorder
    example = tmp_path / "input_example.json"
    # How MLflow writes an input example with missing values: bare NaN in the JSON.
    example.write_text('{"columns": ["tenure", "contract"], "data": [[1.0, "a"], [NaN, "b"], [3.0, null]]}')
    records = load_records(example)
    assert records == [{"tenure": 1.0, "contract": "a"}, {"tenure": None, "contract": "b"},
                       {"tenure": 3.0, "contract": None}]  # fmt: skip

    driver = LoadDriver(url, "m", records, rps=200)
    with driver:
        while driver.sent < 30:
            threading.Event().wait(0.01)
    assert sum(driver.outcomes.values()) == driver.sent
    assert set(driver.outcomes) == {"200"}
    assert {"instances": [{"tenure": None, "contract": "b"}]} in received


def test_requests_without_an_answer_are_counted_not_dropped():
    nowhere = f"http://127.0.0.1:{free_port()}"
    driver = LoadDriver(nowhere, "m", [{"x": 1}], rps=100)
    with driver:
        while driver.sent < 5:
            threading.Event().wait(0.01)
    assert sum(driver.outcomes.values()) == driver.sent
    assert set(driver.outcomes) == {"error ConnectError"}
