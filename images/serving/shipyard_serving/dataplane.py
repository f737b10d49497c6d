"""Server readiness that means "every model can answer", not kserve's constant True.

kserve's `GET /v2/health/ready` returns ready as soon as the HTTP server runs, even while a
model is not ready. Probes (the image HEALTHCHECK, a Kubernetes readinessProbe) ask that
endpoint without knowing the model name, so here it is ready only when every registered
model is; `--fault_never_ready` then keeps a bad canary out of rotation as intended.
"""

from __future__ import annotations

from kserve.protocol.dataplane import DataPlane


class ModelsReadyDataPlane(DataPlane):
    async def ready(self) -> bool:
        models = list(self.model_registry.get_models().values())
        for model in models:
            if not await model.healthy():
                return False
        return bool(models) and await super().ready()
