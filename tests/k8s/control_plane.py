"""A real Kubernetes control plane for tests: etcd + kube-apiserver on loopback (envtest-style).

The binaries are built from the pinned Go modules by `make envtest-bin` (tools/envtest) into a
cache outside the repository; `SHIPYARD_ENVTEST_DIR` names that directory. Everything here is
the real API server: authentication (client certificates, ServiceAccount tokens from the
TokenRequest API), RBAC authorization, admission (NamespaceLifecycle, ServiceAccount,
PodSecurity and the other default plugins), CRDs, server-side apply, optimistic concurrency,
and an audit log of every request a ServiceAccount makes.

What does not run: controller-manager, scheduler, kubelet. What they would write is written
by the tests themselves and labelled as such where it happens.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support.servers import free_port, stop_process, wait_http_ok

ENVTEST_DIR_VARIABLE = "SHIPYARD_ENVTEST_DIR"
# Explicit, although 1.36 enables them by default: the issue's contract is that these run.
ADMISSION_PLUGINS = ("NamespaceLifecycle", "ServiceAccount", "PodSecurity")
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Only ServiceAccounts' requests are audited: they are the identities whose calls the tests record.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "userGroups": ["system:serviceaccounts"]}, {"level": "None"}],
}
READY_TIMEOUT_SECONDS = 180


def envtest_dir() -> Path:
    """Where `make envtest-bin` put kube-apiserver, etcd and kserve-crds/."""
    value = os.environ.get(ENVTEST_DIR_VARIABLE)
    if not value:
        raise RuntimeError(
            f"{ENVTEST_DIR_VARIABLE} is not set: run `make test-k8s`, or `make envtest-bin` and export "
            "the directory it prints"
        )
    path = Path(value)
    missing = [name for name in ("kube-apiserver", "etcd", "kserve-crds") if not (path / name).exists()]
    if missing:
        raise RuntimeError(f"{path} lacks {', '.join(missing)}: run `make envtest-bin`")
    return path


# --- certificates ------------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())  # P-256: fast to generate, accepted everywhere


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        usage = x509.oid.ExtendedKeyUsageOID
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([usage.SERVER_AUTH] if server else [usage.CLIENT_AUTH]), critical=False
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                ]
            ),
            critical=False,
        )
    return builder.sign(signing_key, hashes.SHA256())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


@dataclass(frozen=True)
class Pki:
    ca: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path  # signs ServiceAccount tokens
    service_account_public: Path  # verifies them


def write_pki(directory: Path) -> Pki:
    """A throw-away CA, the API server's serving certificate, an admin client certificate
    (group system:masters) and the ServiceAccount token signing key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = _certificate(_name("shipyard-test-ca"), ca_key, None, ca=True)
    serving_key, admin_key, sa_key = _key(), _key(), _key()
    serving = _certificate(_name("kube-apiserver"), serving_key, (ca, ca_key), server=True)
    admin = _certificate(_name("shipyard-test-admin", "system:masters"), admin_key, (ca, ca_key))
    files = ("ca.crt", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key", "sa.key", "sa.pub")
    pki = Pki(*(directory / name for name in files))
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.serving_cert.write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    pki.serving_key.write_bytes(_pem_key(serving_key))
    pki.admin_cert.write_bytes(admin.public_bytes(serialization.Encoding.PEM))
    pki.admin_key.write_bytes(_pem_key(admin_key))
    pki.service_account_key.write_bytes(_pem_key(sa_key))
    pki.service_account_public.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki


# --- the running control plane -------------------------------------------------------------------


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@dataclass
class ControlPlane:
    server: str
    pki: Pki
    workdir: Path
    audit_log: Path
    startup_seconds: float

    def kubeconfig(self, user: dict[str, Any], name: str = "admin") -> dict[str, Any]:
        """A self-contained kubeconfig (certificates inline) for one user entry."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "envtest",
                    "cluster": {"server": self.server, "certificate-authority-data": _b64(self.pki.ca)},
                }
            ],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": name, "context": {"cluster": "envtest", "user": name}}],
            "current-context": name,
        }

    def admin_kubeconfig(self) -> dict[str, Any]:
        user = {
            "client-certificate-data": _b64(self.pki.admin_cert),
            "client-key-data": _b64(self.pki.admin_key),
        }
        return self.kubeconfig(user)

    def token_kubeconfig(self, token: str, name: str) -> dict[str, Any]:
        return self.kubeconfig({"token": token}, name)

    def write_kubeconfig(self, config: dict[str, Any], path: Path) -> Path:
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def audit_events(self) -> list[dict[str, Any]]:
        """Every request a ServiceAccount made so far (audit stage ResponseComplete)."""
        if not self.audit_log.exists():
            return []
        lines = self.audit_log.read_text().splitlines()
        return [e for e in map(json.loads, lines) if e.get("stage") == "ResponseComplete"]


def _wait_ready(url: str, ca: Path, process: subprocess.Popen, timeout: float) -> None:
    """Poll the API server's /readyz (anonymous access is allowed to it) over TLS."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kube-apiserver exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2, context=context) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            last = str(e)
        time.sleep(0.2)
    raise TimeoutError(f"{url}/readyz not ok within {timeout:.0f}s (last: {last})")


def _etcd_command(binary: Path, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    return [
        str(binary),
        "--data-dir", str(data_dir),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"default={peer}",
        "--unsafe-no-fsync",  # tests only: the data dir is thrown away
        "--log-level", "warn",
    ]  # fmt: skip


def _apiserver_command(
    binary: Path, pki: Pki, etcd_port: int, port: int, audit_policy: Path, audit_log: Path
) -> list[str]:
    return [
        str(binary),
        "--etcd-servers", f"http://127.0.0.1:{etcd_port}",
        "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
        "--secure-port", str(port),
        "--tls-cert-file", str(pki.serving_cert), "--tls-private-key-file", str(pki.serving_key),
        "--client-ca-file", str(pki.ca),
        "--service-account-issuer", SERVICE_ACCOUNT_ISSUER,
        "--service-account-key-file", str(pki.service_account_public),
        "--service-account-signing-key-file", str(pki.service_account_key),
        # Only allocated from, never routed to: no Service traffic leaves the loopback.
        "--service-cluster-ip-range", "10.0.0.0/24",
        "--authorization-mode", "RBAC",
        "--enable-admission-plugins", ",".join(ADMISSION_PLUGINS),
        "--audit-policy-file", str(audit_policy), "--audit-log-path", str(audit_log),
        "--audit-log-format", "json",
        "--profiling=false",
    ]  # fmt: skip


@contextlib.contextmanager
def control_plane(binaries: Path, workdir: Path) -> Iterator[ControlPlane]:
    """Start etcd and kube-apiserver on free loopback ports; stop both (by their pids) on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    pki = write_pki(workdir / "pki")
    audit_policy, audit_log = workdir / "audit-policy.yaml", workdir / "audit.log"
    audit_policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    etcd_port, peer_port, port = free_port(), free_port(), free_port()
    started = time.monotonic()
    with (workdir / "etcd.log").open("wb") as etcd_log, (workdir / "kube-apiserver.log").open("wb") as log:
        etcd = subprocess.Popen(
            _etcd_command(binaries / "etcd", workdir / "etcd-data", etcd_port, peer_port),
            stdout=etcd_log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http_ok(f"http://127.0.0.1:{etcd_port}/health", timeout=30, process=etcd)
            apiserver = subprocess.Popen(
                _apiserver_command(
                    binaries / "kube-apiserver", pki, etcd_port, port, audit_policy, audit_log
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                server = f"https://127.0.0.1:{port}"
                _wait_ready(server, pki.ca, apiserver, READY_TIMEOUT_SECONDS)
                yield ControlPlane(server, pki, workdir, audit_log, time.monotonic() - started)
            finally:
                stop_process(apiserver)
        finally:
            stop_process(etcd)
