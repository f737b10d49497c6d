"""The envtest API server as the tests use it: an admin client, kubectl, helm, ServiceAccount tokens."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from charts.helm_template_generator import CHART, HELM, REQUIRED_VALUES
from control_plane import ControlPlane
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

KUBECTL = str(Path(HELM).with_name("kubectl"))
PROBE_AGENT = "shipyard-rbac-probe"  # user agent of the calls that must be forbidden (audit log)
CONN_ID = "shipyard_envtest"  # the Airflow connection of the airflow-worker ServiceAccount
README = CHART / "README.md"
RELEASE = "shipyard"
# The default values and every worked example in charts/shipyard/ci, each installed into its own namespace.
VALUE_SETS: dict[str, Path | None] = {
    "default": None,
    **{path.stem.removesuffix("-values"): path for path in sorted((CHART / "ci").glob("*.yaml"))},
}

# EMULATED: prometheus-operator's CRDs. Its Go module (which carries them) is not served by the
# module proxy here, so PodMonitor/ServiceMonitor get CRDs with an open spec: the API server
# stores the chart's monitors, their fields are checked by tests/charts against the schema.
MONITORING_KINDS = ("PodMonitor", "ServiceMonitor")


def monitoring_crd(kind: str) -> dict[str, Any]:
    plural = f"{kind.lower()}s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {"kind": kind, "plural": plural, "listKind": f"{kind}List", "singular": kind.lower()},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                            },
                        }
                    },
                }
            ],
        },
    }


class Kube:
    """The running control plane, seen as its admin (system:masters) and through kubectl."""

    def __init__(self, plane: ControlPlane, workdir: Path) -> None:
        self.plane = plane
        self.kubeconfig = plane.write_kubeconfig(plane.admin_kubeconfig(), workdir / "admin.kubeconfig")
        self.api = config.new_client_from_config(str(self.kubeconfig))

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def apply(self, objects: list[dict[str, Any]] | str, *extra: str) -> subprocess.CompletedProcess:
        """Server-side apply as field manager `shipyard-tests`."""
        text = objects if isinstance(objects, str) else yaml.safe_dump_all(objects)
        return self.kubectl(
            "apply", "--server-side", "--field-manager", "shipyard-tests", "-f", "-", *extra, input=text
        )

    def wait_established(self, crd_names: list[str], timeout: float = 600) -> None:
        """Poll the CRDs' Established condition (kubectl wait errors while conditions are empty).

        The 2 MB InferenceService CRD keeps the API server busy: established in ~11 s on quiet
        cores, up to 230 s when the 2 cores were shared with other jobs.
        """
        ext = client.ApiextensionsV1Api(self.api)
        deadline = time.monotonic() + timeout
        pending = set(crd_names)
        while pending:
            for name in list(pending):
                conditions = ext.read_custom_resource_definition(name).status.conditions or []
                if any(c.type == "Established" and c.status == "True" for c in conditions):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"CRDs not established within {timeout}s: {sorted(pending)}")
            time.sleep(0.2)

    def create_service_accounts(self, namespace: str, *names: str) -> None:
        core = client.CoreV1Api(self.api)
        for name in names:
            core.create_namespaced_service_account(
                namespace, client.V1ServiceAccount(metadata={"name": name})
            )

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """A namespace as an administrator creates it, plus its `default` ServiceAccount.

        EMULATED: the `default` ServiceAccount is what kube-controller-manager's
        serviceaccount controller creates in every namespace; no controller-manager runs here.
        """
        core = client.CoreV1Api(self.api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
        self.create_service_accounts(name, "default")

    def helm(self, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [HELM, *args, "--kubeconfig", str(self.kubeconfig)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stderr}"
        return result

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """A real bound token from the TokenRequest API, as the kubelet mounts into a pod."""
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
        )
        return (
            client.CoreV1Api(self.api)
            .create_namespaced_service_account_token(name, namespace, request)
            .status.token
        )

    def service_account_kubeconfig(self, namespace: str, name: str) -> dict[str, Any]:
        token = self.service_account_token(namespace, name)
        return self.plane.token_kubeconfig(token, f"system:serviceaccount:{namespace}:{name}")

    def service_account_client(self, namespace: str, name: str) -> client.ApiClient:
        return config.new_client_from_config_dict(self.service_account_kubeconfig(namespace, name))


def forbidden(call: Any) -> ApiException:
    """The ApiException of a call that must answer 403."""
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, caught.value.body
    return caught.value


def readme_namespace_commands() -> list[list[str]]:
    """The kubectl commands of the README's "Namespace" install step, as a user would paste them."""
    step = re.split(r"\n1\. \**Namespace\.\**", README.read_text(), maxsplit=1)[1].split("\n2. ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", step, re.DOTALL)
    assert block, "the README's Namespace step has no bash block"
    return [shlex.split(line) for line in block.group(1).replace("\\\n", " ").splitlines() if line.strip()]


def values_args(values: str) -> list[str]:
    """helm's `--values` for one of VALUE_SETS (every install and upgrade of the suite goes through here)."""
    path = VALUE_SETS[values]
    if path:
        return ["--values", str(path)]
    return [f"--set-json={key}={json.dumps(value)}" for key, value in REQUIRED_VALUES.items()]


def values_of(path: Path | None) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) if path else {}


def external_service_accounts(values: dict[str, Any]) -> list[str]:
    """The ServiceAccounts the values name but do not create (the user creates them first)."""
    accounts = (
        values.get(component, {}).get("serviceAccount", {}) for component in ("airflowWorker", "pipeline")
    )
    return [account["name"] for account in accounts if account.get("create") is False]
