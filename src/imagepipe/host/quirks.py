"""Host quirks, detected (never assumed) and handled here only.

On the machines this was built on: cgroups in hybrid mode (crun refuses them) and hard rlimits below
podman's defaults. On a normal host (cgroup v2) none of this applies and the plain commands run. (Without
systemd podman cannot schedule health checks; verify drives them itself on every host, so that needs no
detection.)
"""

from __future__ import annotations

import fcntl
import logging
import os
import resource
from pathlib import Path

from imagepipe.exec import cmdline, runner
from imagepipe.host.profile import NS_DIR, NS_FILE, PODMAN_DEFAULT_NOFILE, PODMAN_DEFAULT_NPROC, HostProfile

log = logging.getLogger("imagepipe.host")

def _mounts() -> list[tuple[str, str]]:
    """(mount point, fs type) from /proc/self/mountinfo."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) >= 5 and right:
            out.append((fields[4], right.split()[0]))
    return out


def detect() -> HostProfile:
    mounts = dict(_mounts())
    hybrid = mounts.get("/sys/fs/cgroup") != "cgroup2" and mounts.get("/sys/fs/cgroup/unified") == "cgroup2"
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    return HostProfile(
        hybrid_cgroups=hybrid,
        nofile_hard=PODMAN_DEFAULT_NOFILE if nofile == resource.RLIM_INFINITY else nofile,
        nproc_hard=PODMAN_DEFAULT_NPROC if nproc == resource.RLIM_INFINITY else nproc,
        in_pod=os.environ.get("IMAGEPIPE_IN_POD") == "1",  # set by ci/pipeline.Containerfile
    )


def namespace_alive() -> bool:
    return any(point == str(NS_FILE) and fstype == "nsfs" for point, fstype in _mounts())


def ensure_mount_namespace(profile: HostProfile) -> None:
    """Create (once) a mount namespace whose /sys/fs/cgroup is pure cgroup2, kept alive by a bind mount.

    Every podman call enters it (see cmdline.podman), so containers, their rootfs mounts and their
    network namespaces are visible to later calls (exec, healthcheck run, logs, rm).
    """
    if not profile.needs_mount_namespace or namespace_alive():
        return
    NS_DIR.mkdir(parents=True, exist_ok=True)
    # runs of several checkouts may start at once: one creates the namespace, the others wait and use it
    with open(NS_DIR.parent / "imagepipe-mntns.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not namespace_alive():
            _create_namespace()


def _create_namespace() -> None:
    if not any(point == str(NS_DIR) for point, _ in _mounts()):
        runner.run(cmdline.mount_bind(NS_DIR), what="preparing the podman namespace")
        runner.run(cmdline.mount_private(NS_DIR), what="preparing the podman namespace")
    NS_FILE.touch()
    script = ("mount --make-rprivate /sys/fs/cgroup && umount -R /sys/fs/cgroup && "
              "mount -t cgroup2 none /sys/fs/cgroup")
    runner.run(cmdline.unshare_mount(NS_FILE, script),
               what="creating the podman mount namespace (hybrid cgroups)")
    log.info("podman runs in a private mount namespace with a cgroup2-only /sys/fs/cgroup (%s)", NS_FILE)
