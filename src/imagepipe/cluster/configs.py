"""The local cluster's config files, as text from values: pure, tested without binaries."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import yaml

# Run by containerd as runc: drops the bundle's resource limits (all but device rules) before the real runc
# runs, because on hybrid-cgroup hosts the cgroup2 hierarchy has no cpu/memory/pids controllers and runc
# fails on any limit (`openat2 …/cpu.weight: no such file or directory`). So limits are not enforced here.
RUNC_WRAPPER = '''#!/usr/bin/python3
import json, os, sys
args = sys.argv[1:]
for flag in ("--bundle", "-b"):
    if flag in args and args.index(flag) + 1 < len(args):
        path = os.path.join(args[args.index(flag) + 1], "config.json")
        with open(path) as f:
            spec = json.load(f)
        res = spec.get("linux", {}).get("resources")
        if res:
            spec["linux"]["resources"] = {"devices": res["devices"]} if "devices" in res else {}
            with open(path, "w") as f:
                json.dump(spec, f)
os.execv("{runc}", ["runc"] + args)
'''


def runc_wrapper(runc: str) -> str:
    return RUNC_WRAPPER.replace("{runc}", runc)


def kubeconfig(*, name: str, server: str, ca: Path, user: str, cert: Path | None = None, key: Path | None = None,
               token: str | None = None, namespace: str = "default") -> str:
    """A kubeconfig with one cluster, one user and one context named `name`."""
    credentials: dict[str, str] = {"token": token} if token else {
        "client-certificate": str(cert), "client-key": str(key)}
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode()}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user, "namespace": namespace}}],
    }, sort_keys=False)


def containerd_config(*, root: Path, cni_conf_dir: Path, certs_d: Path, runc: Path, sandbox_image: str) -> str:
    """containerd 1.6 (CRI v1). Its state stays in /run/containerd (hard-coded), a tmpfs private to the
    cluster's namespace; `restrict_oom_score_adj` because root lacks CAP_SYS_RESOURCE here."""
    return f'''version = 2
root = "{root}"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf_dir}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs_d}"
'''


def hosts_toml(registry: str) -> str:
    """containerd's certs.d entry for a plain-HTTP registry on the node's bridge."""
    return f'server = "http://{registry}"\n\n[host."http://{registry}"]\n  capabilities = ["pull", "resolve"]\n'


def cni_conf(*, network: str, bridge: str, subnet: str, gateway: str, ipam_dir: Path) -> str:
    """One bridge network; ipMasq gives pods the host's way out (and only that), removed per pod by CNI DEL
    and, for anything left, by the cluster's teardown (rules carry the network's name)."""
    return json.dumps({
        "cniVersion": "0.4.0", "name": network,
        "plugins": [{"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
                     "ipam": {"type": "host-local", "dataDir": str(ipam_dir),
                              "ranges": [[{"subnet": subnet, "gateway": gateway}]],
                              "routes": [{"dst": "0.0.0.0/0"}]}},
                    {"type": "portmap", "capabilities": {"portMappings": True}}],
    }, indent=2)


def kubelet_config(*, ca: Path, cert: Path, key: Path, address: str, port: int, resolv_conf: str) -> str:
    """The kubelet on a host without usable cgroup2 controllers and without CAP_SYS_RESOURCE: no QoS cgroups,
    no node allocatable enforcement, no host sysctls or iptables chains of its own.

    In-place pod resize is off: with cgroupsPerQOS false, kubelet v1.34's doPodResizeAction dereferences the
    nil cgroup config of the no-op pod container manager and the kubelet dies (kubernetes/kubernetes#137999,
    seen here when a Job's pod was deleted a second after its container started); nothing here resizes."""
    return yaml.safe_dump({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca)}},
        "authorization": {"mode": "Webhook"},
        "address": address, "port": port, "readOnlyPort": 0, "healthzPort": 0,
        "tlsCertFile": str(cert), "tlsPrivateKeyFile": str(key),
        "cgroupDriver": "cgroupfs", "cgroupsPerQOS": False, "enforceNodeAllocatable": [],
        "singleProcessOOMKill": True, "failSwapOn": False,
        "protectKernelDefaults": True, "makeIPTablesUtilChains": False,
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "resolvConf": resolv_conf, "serializeImagePulls": False,
        "evictionHard": {"memory.available": "1%", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "localStorageCapacityIsolation": False,
        "featureGates": {"InPlacePodVerticalScaling": False},
    }, sort_keys=True)


def lighttpd_git(*, addr: str, port: int, root: Path, pidfile: Path, backend: str) -> str:
    """git's smart HTTP (git-http-backend as CGI) over the cluster's git root, read-only (no receive-pack)."""
    return (
        f'server.document-root = "{root}"\n'
        f'server.bind = "{addr}"\n'
        f"server.port = {port}\n"
        f'server.pid-file = "{pidfile}"\n'
        'server.modules = ( "mod_alias", "mod_cgi", "mod_setenv" )\n'
        f'alias.url = ( "/git" => "{backend}" )\n'
        'cgi.assign = ( "" => "" )\n'
        f'setenv.add-environment = ( "GIT_PROJECT_ROOT" => "{root}", "GIT_HTTP_EXPORT_ALL" => "1",\n'
        # the Job fetches one commit by its id, whether or not a branch points at it
        '  "GIT_CONFIG_COUNT" => "1", "GIT_CONFIG_KEY_0" => "uploadpack.allowAnySHA1InWant",\n'
        '  "GIT_CONFIG_VALUE_0" => "true" )\n'
    )
