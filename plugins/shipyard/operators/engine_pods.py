"""What a step pod is, per engine (the spec's `engine`): the one place that decides it.

A pandas step pod runs the pipeline image and calls no API. A Spark step pod is the Spark driver
in client mode (docs/architecture.md, "Engines"): the image's Spark variant, a ServiceAccount
allowed to run executor pods and its token, and the driver's own facts from the downward API,
which `spark_engine.session()` turns into Spark confs (`contract.Env`): the pod IP executors
connect back to, and the pod's name, which makes it the owner of its executor pods (they go
away with it). The executors' image, ServiceAccount, number and size come from the chart's
`spark-step.yaml` template, under the same contract names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubernetes.client import models as k8s

from shipyard_spec.contract import Env

if TYPE_CHECKING:
    from shipyard.settings import KubernetesSettings

# The API server as seen from a pod. In-cluster, Spark's Kubernetes client reads the pod's mounted
# ServiceAccount token (and re-reads it as the kubelet rotates it) and CA by itself.
IN_CLUSTER_MASTER = "k8s://https://kubernetes.default.svc"


def _field(name: Env, path: str) -> k8s.V1EnvVar:
    return k8s.V1EnvVar(
        name=name, value_from=k8s.V1EnvVarSource(field_ref=k8s.V1ObjectFieldSelector(field_path=path))
    )


@dataclass(frozen=True)
class EnginePod:
    """The engine's part of a step pod; placement and resources are the step's."""

    # Prefix of the chart's pod template file name (`<prefix>step.yaml`, `<prefix>gpu-step.yaml`).
    template_prefix: str
    # Name of the `KubernetesSettings` fields of the image and the ServiceAccount (None: the template's).
    image_setting: str
    service_account_setting: str
    # Mount the ServiceAccount's API token (None: as the template or the ServiceAccount says).
    automount_service_account_token: bool | None
    env: tuple[k8s.V1EnvVar, ...]

    def template(self, directory: str, gpu: bool) -> str:
        return f"{directory.rstrip('/')}/{self.template_prefix}{'gpu-' if gpu else ''}step.yaml"

    def image(self, settings: KubernetesSettings) -> str | None:
        return getattr(settings, self.image_setting)

    def service_account(self, settings: KubernetesSettings) -> str | None:
        return getattr(settings, self.service_account_setting)


ENGINE_PODS: dict[str, EnginePod] = {
    "pandas": EnginePod(
        template_prefix="",
        image_setting="image",
        service_account_setting="service_account",
        automount_service_account_token=None,
        env=(),
    ),
    "spark": EnginePod(
        template_prefix="spark-",
        image_setting="spark_image",
        service_account_setting="spark_service_account",
        automount_service_account_token=True,
        env=(
            k8s.V1EnvVar(name=Env.SPARK_MASTER, value=IN_CLUSTER_MASTER),
            _field(Env.SPARK_NAMESPACE, "metadata.namespace"),
            _field(Env.SPARK_DRIVER_POD_NAME, "metadata.name"),
            _field(Env.SPARK_DRIVER_HOST, "status.podIP"),
        ),
    ),
}
