"""Check a binary V2 request (JSON header + raw tensor bytes) before kserve's `InferRequest.from_bytes`.

kserve 0.21 indexes the JSON part without checking it: a missing `inputs` or `name` is a
KeyError, a buffer that does not fill its shape a numpy ValueError, a bad
`inference-header-content-length` a ValueError — all answered 500. Here every such request
is an `InvalidInput` (400) naming what is wrong; a request that passes is exactly one kserve
parses, so kserve then builds the InferRequest.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput
from kserve.utils.numpy_codec import to_np_dtype

BYTES = "BYTES"


def check_binary_request(body: bytes, header_length: str | None) -> int:
    """The JSON header's length, once the header and the byte ranges of every input are consistent."""
    json_length = _json_length(body, header_length)
    try:
        document = orjson.loads(body[:json_length])
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the first {json_length} bytes of the request are not JSON: {e}") from e
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        raise InvalidInput("the JSON part of a V2 request must be an object with an 'inputs' list")
    binary_bytes = 0
    for number, tensor in enumerate(document["inputs"]):
        binary_bytes += _binary_size(number, tensor)
    if binary_bytes != len(body) - json_length:
        raise InvalidInput(
            f"the inputs declare {binary_bytes} bytes of binary data (parameters.binary_data_size) "
            f"but {len(body) - json_length} bytes follow the JSON part"
        )
    return json_length


def _json_length(body: bytes, header_length: str | None) -> int:
    if header_length is None:
        raise InvalidInput(f"a binary V2 request needs the '{INFERENCE_CONTENT_LENGTH_HEADER}' header")
    text = header_length.strip()
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= len(body):
        raise InvalidInput(
            f"'{INFERENCE_CONTENT_LENGTH_HEADER}: {header_length}' is not a length between 1 and "
            f"the body size {len(body)}"
        )
    return int(text)


def _binary_size(number: int, tensor: Any) -> int:
    """Bytes this input takes after the JSON part (0 when its values are in `data`)."""
    if not isinstance(tensor, dict):
        raise InvalidInput(f"input {number} is a JSON {type(tensor).__name__}, expected an object")
    name = tensor.get("name")
    if not isinstance(name, str):
        raise InvalidInput(f"input {number} has no 'name'")
    shape, datatype = tensor.get("shape"), tensor.get("datatype")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidInput(f"input {name!r} has shape {shape!r}, expected a list of non-negative integers")
    if not isinstance(datatype, str) or (datatype != BYTES and to_np_dtype(datatype) is None):
        raise InvalidInput(f"input {name!r} has datatype {datatype!r}, not a V2 datatype")
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput(f"input {name!r}: 'parameters' must be an object")
    if "data" in tensor:
        return 0
    size = parameters.get("binary_data_size")
    if type(size) is not int or size < 0:
        raise InvalidInput(f"input {name!r} has neither 'data' nor a parameters.binary_data_size")
    if datatype != BYTES:
        expected = math.prod(shape) * np.dtype(to_np_dtype(datatype)).itemsize
        if size != expected:
            raise InvalidInput(
                f"input {name!r}: binary_data_size {size} does not hold shape {shape} of {datatype} "
                f"({expected} bytes)"
            )
    return size
