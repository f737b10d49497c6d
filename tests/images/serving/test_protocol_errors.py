"""Malformed requests are 400s with a message, never 500s; every client error is counted (issue 12 #8).

Includes what kserve answers before the model is called: binary V2 bodies kserve 0.21's
`InferRequest.from_bytes` cannot parse, a body that is not JSON, a V2 document that is not
a V2 request, an unknown model name.
"""

from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from conftest import MODEL_NAME, Predictor, Trained

from shipyard_spec.contract import Outcome

V1 = f"/v1/models/{MODEL_NAME}:predict"
V2 = f"/v2/models/{MODEL_NAME}/infer"
ROWS = 3


def _post_binary(predictor: Predictor, body: bytes, header_length: str | None) -> tuple[int, Any]:
    headers = {"content-type": "application/octet-stream"}
    if header_length is not None:
        headers["inference-header-content-length"] = header_length
    request = urllib.request.Request(f"{predictor.url}{V2}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def _binary_request(
    trained: Trained, numeric: set[str], edit: Callable[[dict[str, Any], bytearray], None] = lambda d, b: None
) -> tuple[bytes, str]:
    """Numbers as binary FP64 tensors, categories as JSON data: the JSON part, then the raw bytes."""
    inputs, raw = [], bytearray()
    for name, values in trained.columns.items():
        values = values[:ROWS]
        if name in numeric:
            packed = struct.pack(f"<{ROWS}d", *values)
            raw += packed
            parameters = {"binary_data_size": len(packed)}
            inputs.append({"name": name, "shape": [ROWS], "datatype": "FP64", "parameters": parameters})
        else:
            inputs.append({"name": name, "shape": [ROWS], "datatype": "BYTES", "data": values})
    document: dict[str, Any] = {"id": "bin-1", "inputs": inputs}
    edit(document, raw)
    header = json.dumps(document).encode()
    return header + bytes(raw), str(len(header))


@pytest.fixture(scope="module")
def numeric(trained: Trained) -> set[str]:
    """Numeric features whose first rows are all present (binary FP64 has no null)."""
    return {
        name
        for name, values in trained.columns.items()
        if any(isinstance(v, float) for v in values) and None not in values[:ROWS]
    }


def test_a_binary_v2_request_is_scored(predictor: Predictor, trained: Trained, numeric: set[str]) -> None:
    body, length = _binary_request(trained, numeric)
    status, answer = _post_binary(predictor, body, length)
    assert status == 200, answer
    assert answer["outputs"][0]["data"] == trained.probabilities[:ROWS]


def _first_binary(document: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in document["inputs"] if "parameters" in t)


def _drop_bytes(raw: bytearray, count: int) -> None:
    del raw[-count:]


BAD_BINARY: list[Any] = [
    pytest.param(
        lambda d, raw: _first_binary(d)["parameters"].update(binary_data_size=8),
        None,
        "binary_data_size",
        id="buffer-size-does-not-hold-shape",
    ),
    pytest.param(lambda d, raw: _drop_bytes(raw, 8), None, "bytes follow", id="buffer-shorter-than-declared"),
    pytest.param(lambda d, raw: d.pop("inputs"), None, "'inputs'", id="json-part-without-inputs"),
    pytest.param(lambda d, raw: _first_binary(d).pop("name"), None, "no 'name'", id="input-without-name"),
    pytest.param(lambda d, raw: None, "abc", "inference-header-content-length", id="header-not-a-number"),
    pytest.param(lambda d, raw: None, "99999999", "inference-header-content-length", id="header-past-body"),
    pytest.param(lambda d, raw: None, "5", "not JSON", id="header-cuts-the-json"),
    pytest.param(
        lambda d, raw: (
            raw.extend(b"\xff\xff\xff\x7fab")
            or d["inputs"].append(
                {"name": "extra", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}
            )
        ),
        None,
        "does not match its declared shape",
        id="bytes-tensor-length-prefix-past-the-buffer",
    ),
]


@pytest.mark.parametrize(("edit", "header_length", "named"), BAD_BINARY)
def test_a_malformed_binary_v2_request_is_a_counted_400(
    predictor: Predictor,
    trained: Trained,
    numeric: set[str],
    edit: Callable,
    header_length: str | None,
    named: str,
) -> None:
    before = predictor.counter(Outcome.CLIENT_ERROR)
    body, length = _binary_request(trained, numeric, edit)
    status, answer = _post_binary(predictor, body, header_length or length)
    assert status == 400, answer
    assert named in answer["error"]
    assert predictor.counter(Outcome.CLIENT_ERROR) == before + 1


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status"),
    [
        pytest.param(V1, b"{not json", "application/json", 400, id="v1-body-not-json"),
        pytest.param(V2, b'{"id": "1"}', "application/json", 400, id="v2-document-without-inputs"),
        pytest.param(
            V2, b'{"inputs": [{"shape": [1]}]}', "application/json", 400, id="v2-input-without-name"
        ),
        pytest.param("/v1/models/no-such-model:predict", b"{}", "application/json", 404, id="unknown-model"),
    ],
)
def test_errors_answered_before_the_model_is_called_are_counted(
    predictor: Predictor, path: str, body: bytes, content_type: str, status: int
) -> None:
    before = predictor.counter(Outcome.CLIENT_ERROR)
    assert predictor.post(path, body, content_type)[0] == status
    assert predictor.counter(Outcome.CLIENT_ERROR) == before + 1


def test_a_client_error_writes_one_log_line(predictor: Predictor) -> None:
    marker = "no-such-feature-" + "x" * 8
    assert predictor.post(V1, {"instances": [{marker: 1}]})[0] == 400
    text = predictor.output.read_text()
    assert len([line for line in text.splitlines() if marker in line]) == 1
    assert "Traceback" not in text
