"""The local cluster for the CI half's tests: built by the project's own set-up (imagepipe.cluster), with
ci/rbac.yaml applied in a namespace of its own and a context that runs as that Role's ServiceAccount (not
as cluster admin), the images the Job uses in the cluster's registry, and this commit in its git server."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from pipeline_support import ROOT, WARM_CACHE

from imagepipe.cluster import configs, images
from imagepipe.cluster.facts import Facts
from imagepipe.cluster.local import LocalCluster
from imagepipe.paths import HOST_CA_BUNDLE

NAMESPACE = "imagepipe-ci"
EXECUTOR_TAG = "v1.28.3"


@dataclass
class Kube:
    facts: Facts
    kubeconfig: Path  # holds the admin context and the builder's
    builder: str  # the context that runs as ci/rbac.yaml's ServiceAccount
    executor: str  # where the executor is kept in the cluster's registry (there once stock_executor ran)
    git_image: str
    git_url: str
    commit: str
    local: LocalCluster | None = None  # set by the fixture: the cluster's processes, for their liveness
    # the bookworm-security index the host fetched, served to the pods from the node's address (serve_index)
    debian_index: str = ""

    @property
    def registry(self) -> str:
        return self.facts.registry

    def env(self) -> dict[str, str]:
        import os

        index = {"IMAGEPIPE_DEBIAN_SECURITY_INDEX": self.debian_index} if self.debian_index else {}
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), **index}

    def args(self, *, repo: str = "todo-backend-k8s", context: str | None = None, cold: bool = False) -> list[str]:
        """The pipeline's options for a green Job on this cluster. Every Job shares one kaniko cache (its keys
        are content hashes), so only the session's first build of a tree is cold; `cold`: a cache of the
        repository's own, for a test that needs a cold build."""
        cache = [] if cold else ["--cache-repo", WARM_CACHE]
        return ["--no-provision", "--kube-context", context or self.builder, "--kube-namespace", NAMESPACE,
                "--registry", self.registry, "--repo", repo, "--kaniko-image", self.executor,
                "--git-image", self.git_image, "--git-url", self.git_url, "--registry-mirror", self.registry,
                "--insecure-registry", self.registry, "--build-ca", str(HOST_CA_BUNDLE), *cache]

    def admin(self):  # noqa: ANN201 - the kubernetes client's untyped API
        from kubernetes import client, config

        return client.ApiClient(config.new_client_from_config(config_file=self.facts.kubeconfig,
                                                              context=self.facts.context).configuration)

    def leftovers(self, run_label: str | None = None) -> dict[str, list[str]]:
        """Jobs, pods and Secrets of pipeline runs still in the namespace (through the API)."""
        from kubernetes import client

        api = self.admin()
        batch, core, apps = client.BatchV1Api(api), client.CoreV1Api(api), client.AppsV1Api(api)
        selector = f"io.imagepipe.run={run_label}" if run_label else "io.imagepipe.run"
        found = {
            "jobs": [j.metadata.name for j in batch.list_namespaced_job(NAMESPACE, label_selector=selector).items],
            "pods": [p.metadata.name for p in core.list_namespaced_pod(NAMESPACE, label_selector=selector).items],
            "secrets": [s.metadata.name for s in core.list_namespaced_secret(NAMESPACE, label_selector=selector).items],
        }
        deployed = {
            "deployments": [d.metadata.name for d in apps.list_namespaced_deployment(NAMESPACE,
                                                                                     label_selector=selector).items],
            "services": [s.metadata.name for s in core.list_namespaced_service(NAMESPACE,
                                                                               label_selector=selector).items],
        }
        # the proof's objects are reported only while they exist, so that the Job-only shapes stay as they were
        return {**found, **{k: v for k, v in deployed.items() if v}}


    def stock_executor(self, executor_local: str) -> None:
        """The kaniko executor into the cluster's registry, for the tests whose Job runs it."""
        images.stock_executor(self.facts, executor_local, executor_tag=EXECUTOR_TAG)


def prepare(facts: Facts, work: Path) -> Kube:
    """The cluster as every cluster test needs it; the executor is added by the tests that run a Job's build."""
    from kubernetes import client, config, utils

    api = config.new_client_from_config(config_file=facts.kubeconfig, context=facts.context)
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    utils.create_from_yaml(api, str(ROOT / "ci/rbac.yaml"), namespace=NAMESPACE)
    token = core.create_namespaced_service_account_token(
        "imagepipe-builder", NAMESPACE, {"spec": {"expirationSeconds": 86400}}).status.token
    kubeconfig = work / "kubeconfig"
    admin = yaml.safe_load(Path(facts.kubeconfig).read_text())
    builder = yaml.safe_load(configs.kubeconfig(name="imagepipe-builder", server=facts.server,
                                                ca=Path(facts.dir) / "pki/ca.crt", user="imagepipe-builder",
                                                token=token, namespace=NAMESPACE))
    for key in ("clusters", "users", "contexts"):
        admin[key] += builder[key]
    kubeconfig.write_text(yaml.safe_dump(admin))
    kubeconfig.chmod(0o600)
    stocked = images.stock(facts)
    executor, git_image, bare = images.executor_ref(facts, EXECUTOR_TAG), stocked.git_image, stocked.bare
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    subprocess.run(["git", "-C", str(ROOT), "push", "-q", str(bare), f"{commit}:refs/heads/ci"], check=True)
    return Kube(facts, kubeconfig, "imagepipe-builder", executor, git_image, f"{facts.git_url}/todo.git", commit)


@contextmanager
def serve_index(facts: Facts, work: Path) -> Iterator[str]:
    """The bookworm-security index for both architectures, fetched once by this host (its live fetch is
    what green's verify proves) and served to the cluster's pods from the node's address, so a pod's verify
    depends on no name lookup outside the cluster (a pod's DNS through the bridge failed once in CI).
    Yields the URL, `{arch}` left for the pipeline to fill."""
    from imagepipe.checks import debsec

    for arch in ("amd64", "arm64"):
        debsec.security_index(work, arch)
    server = ThreadingHTTPServer((facts.node_ip, 0), partial(_Quiet, directory=str(work)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{facts.node_ip}:{server.server_port}/bookworm-security-Packages-{{arch}}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def traces(facts: Facts, where: Path) -> dict[str, list[str]]:
    """What of this cluster is on the host: its bridge, iptables rules naming its network or subnet, mounts,
    cgroups and processes under its directory, its registries.conf.d entry."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout.splitlines()
    procs = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout.splitlines()
    prefix = facts.subnet.rsplit(".", 1)[0] + "."
    return {
        "links": [ln for ln in links.splitlines() if f" {facts.bridge}:" in ln or f"master {facts.bridge}" in ln],
        "rules": [r for r in rules if facts.network in r or f" {prefix}" in r],
        "mounts": [m for m in Path("/proc/self/mountinfo").read_text().splitlines() if str(where) in m],
        "cgroups": [str(p) for p in Path(facts.cgroup).parent.glob(Path(facts.cgroup).name)],
        "procs": [p for p in procs if str(where) in p],
        "registries_d": [str(p) for p in Path(facts.registries_conf).parent.glob(Path(facts.registries_conf).name)],
    }


def wait_for(predicate: Callable[[], object], timeout: float) -> bool:
    """True once predicate() is truthy (polled each second), False when `timeout` seconds ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(1)
    return False
