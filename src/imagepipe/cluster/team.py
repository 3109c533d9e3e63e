"""What a team sets up once per namespace for the whole job as a pod, made on the local cluster for the
tests and the bench: the team's keys as the Secret ci/pipeline-job.yaml mounts (a GPG key for simple
signing, a cosign key pair and its password for cosign's signatures and attestations), and ci/lookaside.yaml
as shipped, its ReadWriteMany claim bound to a directory of this single node."""

from __future__ import annotations

import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from imagepipe.cluster import volumes
from imagepipe.errors import PipelineError
from imagepipe.exec import cmdline, runner
from imagepipe.paths import ROOT
from imagepipe.services import sigstore
from imagepipe.supplychain.signing import agent_stopped

KEY_SECRET = "imagepipe-signing"  # noqa: S105 - a Secret's name: the one ci/pipeline-job.yaml mounts
LOOKASIDE = ROOT / "ci/lookaside.yaml"
LOOKASIDE_PORT = 8080  # its container's port


@dataclass(frozen=True)
class CosignPair:
    key: str  # the encrypted private key, PEM (cosign.key)
    password: str  # what unlocks it (COSIGN_PASSWORD)
    public: str  # the public key, PEM (cosign.pub): what verifies the pod's signatures and attestations


@dataclass(frozen=True)
class Key:
    secret: str  # armored secret key
    public: str  # armored public key
    fingerprint: str
    cosign: CosignPair


def new_cosign_pair() -> CosignPair:
    """A fresh cosign key pair made by the real cosign, its private half encrypted with a random password;
    nothing of it stays on disk."""
    password = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="imagepipe-team-cosign-") as where:
        runner.run(cmdline.cosign_generate_key_pair(sigstore.cosign(), Path(where)),
                   env=cmdline.cosign_env(password=password), stage="cluster", timeout=120,
                   what="making the team's cosign key pair")
        key, pub = cmdline.cosign_key_pair(Path(where))
        return CosignPair(key.read_text(), password, pub.read_text())


def new_key(home: Path) -> Key:
    """A fresh ed25519 signing key in GNUPGHOME `home` (made here), its agent stopped afterwards, and a fresh
    cosign key pair."""
    home.mkdir(mode=0o700, parents=True)
    env = {"GNUPGHOME": str(home)}

    def gpg(*args: str) -> str:
        return runner.run(cmdline.gpg("--pinentry-mode", "loopback", "--passphrase", "", *args), env=env,
                          stage="cluster", timeout=120).stdout

    with agent_stopped(home):
        gpg("--quick-gen-key", "ci@todo.example", "ed25519", "sign", "never")
        listed = gpg("--with-colons", "--list-secret-keys")
        fingerprint = listed.split("fpr:::::::::")[1].split(":")[0]
        secret, public = gpg("--armor", "--export-secret-keys"), gpg("--armor", "--export")
    return Key(secret, public, fingerprint, new_cosign_pair())


def secret_data(key: Key) -> dict[str, str]:
    """The Secret's items: what ci/pipeline-job.yaml reads (key.asc, cosign.key, cosign.password) and the
    public halves a consumer pod verifies with (public.asc, cosign.pub)."""
    return {"key.asc": key.secret, "public.asc": key.public, "cosign.key": key.cosign.key,
            "cosign.password": key.cosign.password, "cosign.pub": key.cosign.public}


def _documents() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    claim, deployment, service = yaml.safe_load_all(LOOKASIDE.read_text())
    return claim, deployment, service


def volume_name(namespace: str) -> str:
    return f"imagepipe-lookaside-{namespace}"


def set_up(api: Any, namespace: str, *, image: str, store: Path, key: Key) -> str:
    """The keys' Secret and the lookaside serving `store`; returns the URL consumers read it at. This
    cluster has no kube-proxy or DNS, so that is the server pod's own address, where a team's is the
    Service's name."""
    from kubernetes import client

    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespaced_secret(namespace, {"metadata": {"name": KEY_SECRET}, "stringData": secret_data(key)})
    claim, deployment, service = _documents()
    volumes.host_path_volume(core, volume_name(namespace), store, namespace=namespace,
                             claim=claim["metadata"]["name"], access="ReadWriteMany", size="1Gi")
    core.create_namespaced_persistent_volume_claim(namespace, claim)
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = image
    apps.create_namespaced_deployment(namespace, deployment)
    core.create_namespaced_service(namespace, service)
    selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        ready = [p for p in pods if p.status.pod_ip and any(s.ready for s in p.status.container_statuses or [])]
        if ready:
            return f"http://{ready[0].status.pod_ip}:{LOOKASIDE_PORT}"
        time.sleep(1)
    raise PipelineError(f"the lookaside server in {namespace} did not become Ready in 300 s", stage="cluster")


def tear_down(api: Any, namespace: str) -> None:
    """Everything set_up made, each deletion on its own; what is already gone is no failure."""
    from kubernetes import client

    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    claim, deployment, service = _documents()
    deletions: list[tuple[Any, tuple[str, ...], dict[str, Any]]] = [
        (apps.delete_namespaced_deployment, (deployment["metadata"]["name"], namespace),
         {"propagation_policy": "Foreground", "grace_period_seconds": 0}),
        (core.delete_namespaced_service, (service["metadata"]["name"], namespace), {}),
        (core.delete_namespaced_persistent_volume_claim, (claim["metadata"]["name"], namespace), {}),
        (core.delete_persistent_volume, (volume_name(namespace),), {}),
        (core.delete_namespaced_secret, (KEY_SECRET, namespace), {}),
    ]
    for delete, args, kw in deletions:
        try:
            delete(*args, **kw)
        except client.ApiException as e:
            if e.status != 404:
                raise
