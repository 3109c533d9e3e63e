"""What the host is, as a value: the facts host.quirks detects, which the argv builders read (a module of
its own, so `exec.cmdline` and `host.quirks` do not import each other)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Where the persistent mount namespace for podman lives (tmpfs: gone at reboot, recreated on demand).
NS_DIR = Path("/run/imagepipe")
NS_FILE = NS_DIR / "podman-mntns"
# podman's defaults when it sets rlimits itself; lower hard limits make crun fail with EPERM.
PODMAN_DEFAULT_NOFILE = 1048576
PODMAN_DEFAULT_NPROC = 4194304


@dataclass(frozen=True)
class HostProfile:
    hybrid_cgroups: bool = False
    nofile_hard: int = PODMAN_DEFAULT_NOFILE
    nproc_hard: int = PODMAN_DEFAULT_NPROC
    # podman inside a Kubernetes pod (the pipeline's image, ci/pipeline-job.yaml): its containers share the
    # pod's network, since a podman network needs NET_ADMIN and more there, and get no cgroups of their own
    in_pod: bool = False

    @property
    def needs_mount_namespace(self) -> bool:
        return self.hybrid_cgroups
