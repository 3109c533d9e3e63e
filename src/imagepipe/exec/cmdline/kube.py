"""argv builders for the local cluster (imagepipe.cluster): its namespace, etcd, the control plane, and the
node (containerd, kubelet) entered into the namespace."""

from __future__ import annotations

from pathlib import Path

__all__ = ["kube_apiserver", "kube_controller_manager", "kube_scheduler", "kube_etcd", "kube_in_namespace",
           "kube_kubelet", "kube_containerd", "kube_namespace", "service_route", "nat_rules", "nat_delete",
           "nat_flush_chain", "nat_delete_chain", "ipv4_addresses", "bridge_mac", "bridge_add", "link_delete",
           "umount"]

# Inside the cluster's namespace: a cgroup2-only /sys/fs/cgroup (its root is the cluster's own cgroup), a
# private /run (containerd 1.6 hard-codes /run/containerd), /var/lib and /var/log of its own, and the three
# sysctls the kubelet wants bound to files holding its values (protectKernelDefaults), so the host keeps
# its settings and nothing is written outside the cluster's directory.
NAMESPACE_SETUP = """set -e
mount --make-rprivate /
umount -R /sys/fs/cgroup 2>/dev/null || umount -l /sys/fs/cgroup 2>/dev/null || true
mount -t cgroup2 none /sys/fs/cgroup
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=755 tmpfs /var/lib
mount --bind "$1/varlog" /var/log
for s in vm/overcommit_memory kernel/panic kernel/panic_on_oops; do
  mount --bind "$1/sysctl/$(echo $s | tr / _)" /proc/sys/$s
done
"""


def kube_namespace(cgroup_procs: Path, mnt: Path, cgroup_ns: Path, directory: Path) -> list[str]:
    """Move into the cluster's cgroup, then unshare a mount and a cgroup namespace kept alive by bind mounts
    at `mnt` and `cgroup_ns`, and prepare it."""
    return ["sh", "-c", 'echo $$ > "$1" && shift && exec "$@"', "sh", str(cgroup_procs),
            "unshare", f"--mount={mnt}", f"--cgroup={cgroup_ns}", "--propagation", "private",
            "sh", "-c", NAMESPACE_SETUP, "sh", str(directory)]


def kube_in_namespace(mnt: Path, cgroup_ns: Path, argv: list[str]) -> list[str]:
    """argv run inside the cluster's namespace, in its cgroup (the namespace's root)."""
    return ["nsenter", f"--mount={mnt}", f"--cgroup={cgroup_ns}", "--", "sh", "-c",
            'echo $$ > /sys/fs/cgroup/cgroup.procs && exec "$@"', "sh", *argv]


def kube_etcd(binary: str, *, data: Path, client_port: int, peer_port: int) -> list[str]:
    return [binary, "--name", "imagepipe", "--data-dir", str(data),
            "--listen-client-urls", f"http://127.0.0.1:{client_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{client_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"imagepipe=http://127.0.0.1:{peer_port}", "--log-level", "warn"]


def kube_apiserver(binary: Path, *, pki: Path, etcd_port: int, port: int, node_ip: str, service_range: str,
                   cert_dir: Path) -> list[str]:
    # on the node's bridge address only: this host and the cluster's pods (a pipeline running in one) reach it,
    # nothing off this machine does. --enable-aggregator-routing: a webhook's Service (an admission
    # controller's, a CRD's conversion) is reached at its endpoints' pod addresses, since no kube-proxy
    # makes its ClusterIP answer (the default routing dials the ClusterIP)
    return [str(binary), f"--etcd-servers=http://127.0.0.1:{etcd_port}", f"--bind-address={node_ip}",
            f"--secure-port={port}", f"--advertise-address={node_ip}", f"--service-cluster-ip-range={service_range}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}", f"--kubelet-client-certificate={pki / 'apiserver-kubelet.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}", "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc", "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction", "--enable-aggregator-routing=true",
            f"--cert-dir={cert_dir}", "--profiling=false", "--v=0"]


def kube_controller_manager(binary: Path, *, pki: Path, kubeconfig: Path, port: int) -> list[str]:
    return [str(binary), f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", "--bind-address=127.0.0.1", f"--secure-port={port}",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=true", "--leader-elect=false", "--profiling=false", "--v=0"]


def kube_scheduler(binary: Path, *, kubeconfig: Path, port: int) -> list[str]:
    return [str(binary), f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", "--bind-address=127.0.0.1", f"--secure-port={port}",
            "--leader-elect=false", "--profiling=false", "--v=0"]


def kube_containerd(config: Path) -> list[str]:
    return ["containerd", "--config", str(config), "--log-level", "warn"]


def kube_kubelet(binary: Path, *, config: Path, kubeconfig: Path, node: str, node_ip: str, root: Path) -> list[str]:
    return [str(binary), f"--config={config}", f"--kubeconfig={kubeconfig}", f"--hostname-override={node}",
            f"--node-ip={node_ip}", f"--root-dir={root}", f"--cert-dir={root / 'pki'}", "--v=0"]


KUBERNETES_SERVICE = ("10.96.0.1", 443)  # the first address of the cluster's service range


def service_route(cluster_id: str, bridge: str, server: str) -> list[str]:
    """An iptables nat PREROUTING rule (without the table and chain) leading the `kubernetes` Service's
    address, from pods on `bridge`, to the API server at `server` (https://IP:PORT)."""
    host, port = server.removeprefix("https://").rsplit(":", 1)
    ip, service_port = KUBERNETES_SERVICE
    return ["-i", bridge, "-d", ip, "-p", "tcp", "--dport", str(service_port), "-m", "comment", "--comment",
            f"imagepipe-{cluster_id} kubernetes service", "-j", "DNAT", "--to-destination", f"{host}:{port}"]


def nat_rules() -> list[str]:
    """The nat table as rules (`-A CHAIN …` lines), read for the cluster's leftovers."""
    return ["iptables-save", "-t", "nat"]


def nat_delete(chain: str, rule: list[str]) -> list[str]:
    """Delete one rule of `chain`, given as iptables-save printed it after `-A CHAIN`."""
    return ["iptables", "-t", "nat", "-D", chain, *rule]


def nat_flush_chain(chain: str) -> list[str]:
    return ["iptables", "-t", "nat", "-F", chain]


def nat_delete_chain(chain: str) -> list[str]:
    return ["iptables", "-t", "nat", "-X", chain]


def ipv4_addresses() -> list[str]:
    """Every IPv4 address of the host, one line each."""
    return ["ip", "-4", "-o", "addr"]


def bridge_mac(cluster_id: str) -> str:
    """A locally administered unicast MAC (02:…) for a cluster's bridge, from its id (3 bytes of hex)."""
    tail = bytes.fromhex(cluster_id)
    if len(tail) != 3:
        raise ValueError(f"a cluster id is 6 hex digits, not {cluster_id!r}")
    return ":".join(f"{b:02x}" for b in (0x02, 0x69, 0x70, *tail))


def bridge_add(device: str, mac: str) -> list[str]:
    """A bridge with its MAC set by us. Without it the kernel gives a bridge the lowest MAC of its ports, so
    a pod's veth coming or going changes the gateway's MAC under every other pod, whose ARP entry then
    points nowhere for up to a minute (seen as a `dial tcp … i/o timeout` from a pod to the node's registry,
    and as DNS failures through the gateway). A set address (addr_assign_type 3) is never recalculated."""
    return ["ip", "link", "add", "name", device, "address", mac, "type", "bridge"]


def link_delete(device: str) -> list[str]:
    return ["ip", "link", "del", device]


def umount(point: Path) -> list[str]:
    return ["umount", str(point)]
