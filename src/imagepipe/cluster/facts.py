"""What a local cluster is (saved as <dir>/cluster.json, read by `status`, `down` and the tests), and the
host facts its plan reads: the cgroup2 hierarchy and a free pod subnet."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from imagepipe.errors import PipelineError
from imagepipe.exec import cmdline, runner

REGISTRIES_D = Path("/etc/containers/registries.conf.d")
CGROUP2 = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))  # hybrid host, else a cgroup2-only host
SYSCTLS = {"vm_overcommit_memory": "1", "kernel_panic": "10", "kernel_panic_on_oops": "1"}
REGISTRY_PORT = 5000
GIT_PORT = 8080
GIT_BACKEND = "/usr/lib/git-core/git-http-backend"  # Debian's git


def cgroup2_root() -> Path:
    for root in CGROUP2:
        if (root / "cgroup.procs").exists() and Path("/proc/self/mountinfo").read_text().count(f" {root} "):
            return root
    raise PipelineError("no cgroup2 hierarchy is mounted on this host", stage="cluster")


@dataclass(frozen=True)
class Facts:
    """What a running cluster is, saved as <dir>/cluster.json (read by `status`, `down` and the tests)."""
    id: str
    dir: str
    kubeconfig: str
    context: str
    server: str
    node: str
    node_ip: str
    bridge: str
    network: str
    subnet: str
    registry: str  # HOST:PORT on the bridge, plain HTTP: both the pods and this host reach it
    git_url: str  # git's smart HTTP root on the bridge (http://IP:PORT/git)
    cgroup: str
    registries_conf: str
    ready_seconds: float = 0.0

    @classmethod
    def load(cls, directory: Path) -> Facts | None:
        try:
            return cls(**json.loads((directory / "cluster.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None


def free_subnet() -> int:
    """The first 10.244.N.0/24 no interface of this host is on (several clusters may run at once)."""
    used = runner.run(cmdline.ipv4_addresses(), stage="cluster").stdout
    for n in range(0, 250):
        if f" 10.244.{n}." not in used:
            return n
    raise PipelineError("no free 10.244.N.0/24 for the cluster's pod network", stage="cluster")


