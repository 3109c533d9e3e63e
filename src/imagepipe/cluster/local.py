"""A single-node Kubernetes on this machine, for the CI half's tests and for trying it by hand
(`python build/pipeline.py cluster up|down|status`).

Everything it writes lives in its directory, except what it must have on the host while it runs and
removes on `down`: its processes (all in a cgroup of its own), one bridge (the pod network, on which its
registry and git server listen), the CNI's masquerade rules for that network, and a registries.conf.d entry
that lets this host's podman/skopeo pull from its plain-HTTP registry. The node's processes run in a mount
and cgroup namespace of their own (see cmdline.kube.NAMESPACE_SETUP for what that hides).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import time
from pathlib import Path

from imagepipe.cluster import binaries, configs, pki, teardown
from imagepipe.cluster.facts import (
    GIT_BACKEND,
    GIT_PORT,
    REGISTRIES_D,
    REGISTRY_PORT,
    SYSCTLS,
    Facts,
    cgroup2_root,
    free_subnet,
)
from imagepipe.errors import PipelineError
from imagepipe.exec import cmdline, runner
from imagepipe.exec.retry import wait_until
from imagepipe.registry import embedded
from imagepipe.services.postgres import free_port

log = logging.getLogger("imagepipe.cluster")
# in the order `down` stops them
COMPONENTS = ("kubelet", "containerd", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")


def _last_failure(log_path: Path) -> str:
    """The line that says why a component died: Go's `panic:`, else klog's last fatal (F…) or error (E…) line."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return f"no log at {log_path}"
    for pattern in (r"^panic: ", r"^F\d{4} ", r"^E\d{4} "):
        found = [line for line in lines if re.match(pattern, line)]
        if found:
            return f"{found[-1].strip()[:300]}; see {log_path}"
    return f"see {log_path}"


class LocalCluster:
    def __init__(self, directory: Path) -> None:
        self.dir = directory.resolve()
        self.pki = self.dir / "pki"
        self.pids = self.dir / "pids"
        self.ns = self.dir / "ns"
        self.logs = self.dir / "logs"

    # --- up ------------------------------------------------------------------------------------------

    def up(self) -> Facts:
        running = Facts.load(self.dir)
        if running is not None and self._alive("kubelet"):
            return running
        if running is not None:
            self.down()
        bins = binaries.ensure()
        t0 = time.monotonic()
        facts = self._plan()
        try:
            pki.issue_all(self.pki, kubeconfigs=self.dir, node=facts.node, node_ip=facts.node_ip,
                          server=facts.server, context=facts.context)
            self._bridge(facts)
            self._namespace(facts)
            self._control_plane(facts, bins)
            self._service_route(facts)
            self._services(facts)
            self._node(facts, bins)
            facts = self._wait_ready(facts, t0)
        except BaseException:
            self.down(facts)
            raise
        (self.dir / "cluster.json").write_text(json.dumps(facts.__dict__, indent=2) + "\n")
        return facts

    def _plan(self) -> Facts:
        for d in (self.dir, self.pki, self.pids, self.ns, self.logs, self.dir / "sysctl", self.dir / "varlog"):
            d.mkdir(parents=True, exist_ok=True)
        cid = secrets.token_hex(3)
        n = free_subnet()
        ip = f"10.244.{n}.1"
        facts = Facts(
            id=cid, dir=str(self.dir), kubeconfig=str(self.dir / "kubeconfig"), context=f"imagepipe-{cid}",
            server=f"https://{ip}:{free_port()}", node=f"imagepipe-{cid}", node_ip=ip, bridge=f"ipk{cid}",
            network=f"imagepipe-{cid}", subnet=f"10.244.{n}.0/24", registry=f"{ip}:{REGISTRY_PORT}",
            git_url=f"http://{ip}:{GIT_PORT}/git", cgroup=str(cgroup2_root() / f"imagepipe-{cid}"),
            registries_conf=str(REGISTRIES_D / f"60-imagepipe-cluster-{cid}.conf"))
        # saved at once: a `down` after a failed or killed `up` finds what to remove
        (self.dir / "cluster.json").write_text(json.dumps(facts.__dict__, indent=2) + "\n")
        return facts

    def _bridge(self, f: Facts) -> None:
        """The pod network's bridge, made first so the node IP, the registry and the git server exist before
        any pod (the CNI bridge plugin then uses it)."""
        runner.run(cmdline.bridge_add(f.bridge, cmdline.bridge_mac(f.id)), stage="cluster")
        runner.run(["ip", "addr", "add", f"{f.node_ip}/24", "dev", f.bridge], stage="cluster")
        runner.run(["ip", "link", "set", f.bridge, "up"], stage="cluster")

    def _namespace(self, f: Facts) -> None:
        Path(f.cgroup).mkdir()
        for name, value in SYSCTLS.items():
            (self.dir / "sysctl" / name).write_text(value + "\n")
        for sub in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "certs.d"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        runner.run(cmdline.mount_bind(self.ns), stage="cluster")
        runner.run(cmdline.mount_private(self.ns), stage="cluster")
        (self.ns / "mnt").touch()
        (self.ns / "cgroup").touch()
        runner.run(cmdline.kube_namespace(Path(f.cgroup) / "cgroup.procs", self.ns / "mnt", self.ns / "cgroup",
                                           self.dir), stage="cluster", what="creating the cluster's namespace")

    def _spawn(self, name: str, argv: list[str], *, inside: bool = False) -> None:
        if inside:
            argv = cmdline.kube_in_namespace(self.ns / "mnt", self.ns / "cgroup", argv)
        pid = runner.spawn(argv, log_path=self.logs / f"{name}.log")
        (self.pids / f"{name}.pid").write_text(f"{pid}\n")

    def _alive(self, name: str) -> bool:
        return runner.service_pid(self.pids / f"{name}.pid") is not None

    def stopped(self) -> list[str]:
        """The cluster's processes that are no longer running, each with its log's last panic or error line
        (nothing restarts them, so a test would otherwise wait for pods that never start)."""
        return [f"{name} exited ({_last_failure(self.logs / f'{name}.log')})" for name in COMPONENTS
                if not self._alive(name)]

    def _control_plane(self, f: Facts, bins: binaries.Binaries) -> None:
        etcd, peer = free_port(), free_port()
        self._spawn("etcd", cmdline.kube_etcd("etcd", data=self.dir / "etcd", client_port=etcd, peer_port=peer))
        port = int(f.server.rsplit(":", 1)[1])
        self._spawn("kube-apiserver", cmdline.kube_apiserver(
            bins.path("kube-apiserver"), pki=self.pki, etcd_port=etcd, port=port, node_ip=f.node_ip,
            service_range="10.96.0.0/24", cert_dir=self.dir / "apiserver"))
        if not wait_until(lambda: self._healthy(f), timeout=90, interval=0.25):
            raise PipelineError(f"the apiserver did not become ready: see {self.logs / 'kube-apiserver.log'}",
                                stage="cluster")
        self._spawn("kube-controller-manager", cmdline.kube_controller_manager(
            bins.path("kube-controller-manager"), pki=self.pki,
            kubeconfig=self.dir / "controller-manager.kubeconfig", port=free_port()))
        self._spawn("kube-scheduler", cmdline.kube_scheduler(
            bins.path("kube-scheduler"), kubeconfig=self.dir / "scheduler.kubeconfig", port=free_port()))

    def _service_route(self, f: Facts) -> None:
        """The one Service a pod needs without kube-proxy: `kubernetes` (10.96.0.1:443, what in-cluster
        clients such as the pipeline's own pod are configured with) led to the API server on the node's
        address, for traffic from this cluster's bridge only; removed by down()."""
        runner.run(["iptables", "-t", "nat", "-A", "PREROUTING", *cmdline.service_route(f.id, f.bridge, f.server)],
                   stage="cluster", what="routing the kubernetes Service to the API server")

    def _healthy(self, f: Facts) -> bool:
        import requests

        try:
            r = requests.get(f"{f.server}/readyz", verify=str(self.pki / "ca.crt"), timeout=2,
                             cert=(str(self.pki / "admin.crt"), str(self.pki / "admin.key")))
            return r.status_code == 200
        except requests.RequestException:
            return False

    def _services(self, f: Facts) -> None:
        """The registry and the git server both sides reach, on the bridge; this host trusts the registry
        as plain HTTP through a registries.conf.d entry of its own (removed on `down`)."""
        reg = embedded.EmbeddedRegistry(self.dir, f.registry)
        reg.ensure_running()
        Path(f.registries_conf).write_text(f'[[registry]]\nlocation = "{f.registry}"\ninsecure = true\n')
        (self.dir / "certs.d" / f.registry).mkdir(parents=True, exist_ok=True)
        (self.dir / "certs.d" / f.registry / "hosts.toml").write_text(configs.hosts_toml(f.registry))
        (self.dir / "git").mkdir(exist_ok=True)
        conf = self.dir / "git-lighttpd.conf"
        conf.write_text(configs.lighttpd_git(addr=f.node_ip, port=GIT_PORT, root=self.dir / "git",
                                             pidfile=self.pids / "git.pid", backend=GIT_BACKEND))
        runner.run(cmdline.lighttpd(conf), stage="cluster", what="starting the cluster's git server")

    def _node(self, f: Facts, bins: binaries.Binaries) -> None:
        wrapper = self.dir / "runc-wrapper"
        wrapper.write_text(configs.runc_wrapper(runner.which("runc")))
        wrapper.chmod(0o755)
        pause = f"{f.registry}/imagepipe/pause:1"
        from imagepipe.cluster import images  # buildah/skopeo: only once the node is being made

        images.push_pause(bins.path("pause"), pause)
        (self.dir / "containerd.toml").write_text(configs.containerd_config(
            root=self.dir / "containerd", cni_conf_dir=self.dir / "cni/net.d", certs_d=self.dir / "certs.d",
            runc=wrapper, sandbox_image=pause))
        (self.dir / "cni/net.d/10-imagepipe.conflist").write_text(configs.cni_conf(
            network=f.network, bridge=f.bridge, subnet=f.subnet, gateway=f.node_ip, ipam_dir=self.dir / "cni/ipam"))
        self._spawn("containerd", cmdline.kube_containerd(self.dir / "containerd.toml"), inside=True)
        socket = cmdline.kube_in_namespace(self.ns / "mnt", self.ns / "cgroup",
                                            ["test", "-S", "/run/containerd/containerd.sock"])
        if not wait_until(lambda: runner.run(socket, ok_codes=(0, 1)).code == 0 or not self._alive("containerd"),
                          timeout=60, interval=0.2) or not self._alive("containerd"):
            raise PipelineError(f"containerd did not start: see {self.logs / 'containerd.log'}", stage="cluster")
        (self.dir / "kubelet.yaml").write_text(configs.kubelet_config(
            ca=self.pki / "ca.crt", cert=self.pki / "kubelet.crt", key=self.pki / "kubelet.key", address=f.node_ip,
            port=free_port(), resolv_conf="/etc/resolv.conf"))
        self._spawn("kubelet", cmdline.kube_kubelet(
            bins.path("kubelet"), config=self.dir / "kubelet.yaml", kubeconfig=self.dir / "node.kubeconfig",
            node=f.node, node_ip=f.node_ip, root=self.dir / "kubelet"), inside=True)

    def _wait_ready(self, f: Facts, t0: float) -> Facts:
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=f.kubeconfig, context=f.context)
        core = client.CoreV1Api(api)

        def node_ready() -> bool:
            if not self._alive("kubelet"):
                raise PipelineError(f"the kubelet exited: see {self.logs / 'kubelet.log'}", stage="cluster")
            for node in core.list_node().items:
                for cond in node.status.conditions or []:
                    if cond.type == "Ready" and cond.status == "True":
                        return True
            return False

        if not wait_until(node_ready, timeout=120, interval=0.25):
            raise PipelineError(f"the node did not become Ready: see {self.logs}/kubelet.log", stage="cluster")
        ready = round(time.monotonic() - t0, 1)

        def default_sa() -> bool:  # pods cannot be created before it exists
            return any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account("default").items)

        if not wait_until(default_sa, timeout=60, interval=0.25):
            raise PipelineError("the default ServiceAccount did not appear", stage="cluster")
        return Facts(**{**f.__dict__, "ready_seconds": ready})

    # --- down ----------------------------------------------------------------------------------------

    def down(self, facts: Facts | None = None) -> bool:
        """Stop everything and remove what it put on the host. False when nothing was there. A step that
        fails does not stop the others; they are all reported together (PipelineError) at the end."""
        f = facts or Facts.load(self.dir)
        if f is None:
            return False
        self._drain(f)
        teardown.kill_cgroup(Path(f.cgroup))
        for name in (*COMPONENTS, "git"):
            runner.stop_service(self.pids / f"{name}.pid")
        embedded.EmbeddedRegistry(self.dir, f.registry).stop()
        teardown.kill_cgroup(Path(f.cgroup))  # shims that outlived containerd
        failures = teardown.Failures()
        for point in (self.ns / "mnt", self.ns / "cgroup", self.ns):
            teardown.unmount(point, failures)
        teardown.remove_cgroups(Path(f.cgroup))
        teardown.remove_masquerade(f.network, f.subnet, failures)
        teardown.remove_service_route(f.id, failures)
        teardown.remove_link(f.bridge, failures)
        Path(f.registries_conf).unlink(missing_ok=True)
        if failures:  # cluster.json stays: `cluster down` can be run again once the cause is mended
            raise PipelineError(f"cluster down: {len(failures)} teardown step(s) failed: {'; '.join(failures)}",
                                stage="cluster")
        (self.dir / "cluster.json").unlink(missing_ok=True)
        return True

    def _drain(self, f: Facts) -> None:
        """Pods deleted through the API while the kubelet runs, so it tears their sandboxes (and the CNI its
        rules) down the ordinary way; what is left is removed by force afterwards."""
        if not self._alive("kubelet") or not self._healthy(f):
            return
        with contextlib.suppress(Exception):
            from kubernetes import client, config

            core = client.CoreV1Api(config.new_client_from_config(config_file=f.kubeconfig, context=f.context))
            for pod in core.list_pod_for_all_namespaces().items:
                core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
            wait_until(lambda: not teardown.sandboxes(self.dir), timeout=20, interval=0.5)

