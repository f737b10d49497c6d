"""FAULT INJECTION — deliberately bad behaviour for testing canary rollouts. Off by default.

A rollout controller is only trusted once it has rolled back a bad canary. These settings
turn a healthy predictor into one: `--fault_error_rate` answers that share of requests with
a 500 (counted as `server_error`), `--fault_latency_ms` delays every request, and
`--fault_never_ready` loads the model but never reports ready. Never set them in production.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from kserve.errors import InferenceError


@dataclass(frozen=True)
class Faults:
    error_rate: float = 0.0
    latency_ms: float = 0.0
    never_ready: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"--fault_error_rate {self.error_rate} is outside [0, 1]")
        if self.latency_ms < 0:
            raise ValueError(f"--fault_latency_ms {self.latency_ms} is negative")

    @property
    def active(self) -> bool:
        return bool(self.error_rate or self.latency_ms or self.never_ready)

    async def inject(self, model_name: str) -> None:
        """Delay, then fail this request with probability `error_rate` (an InferenceError: HTTP 500)."""
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        if self.error_rate and random.random() < self.error_rate:
            raise InferenceError(f"injected fault: {model_name} fails {self.error_rate:.0%} of requests")
