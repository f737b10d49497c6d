"""kserve's DataPlane with readiness that means "every model can answer" and checked binary V2 requests.

kserve's `GET /v2/health/ready` returns ready as soon as the HTTP server runs, even while a
model is not ready. Probes (the image HEALTHCHECK, a Kubernetes readinessProbe) ask that
endpoint without knowing the model name, so here it is ready only when every registered
model is; `--fault_never_ready` then keeps a bad canary out of rotation as intended.

Binary V2 requests are checked (binary_v2.py) before kserve parses them, so a malformed one
is a 400 naming the problem instead of kserve's 500.
"""

from __future__ import annotations

import struct
from typing import Any

from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferRequest

from shipyard_serving.binary_v2 import check_binary_request


class ShipyardDataPlane(DataPlane):
    async def ready(self) -> bool:
        models = list(self.model_registry.get_models().values())
        for model in models:
            if not await model.healthy():
                return False
        return bool(models) and await super().ready()

    def decode_inference_request(self, body: Any, headers: dict[str, str], model_name: str) -> InferRequest:
        if not isinstance(body, bytes):
            return super().decode_inference_request(body, headers, model_name)
        json_length = check_binary_request(body, headers.get(INFERENCE_CONTENT_LENGTH_HEADER))
        try:
            return InferRequest.from_bytes(body, json_length, model_name)
        except InvalidInput:
            raise
        except (ValueError, struct.error) as e:
            # Tensor bytes that do not decode to their shape (a BYTES tensor's length prefixes).
            raise InvalidInput(f"binary tensor data does not match its declared shape: {e}") from e
