"""Removing what the local cluster put on the host, for `down`: whatever is left of its processes (all in
its cgroup), its cgroups, and the CNI's masquerade rules for its network when a pod's teardown never ran.
A step that fails is kept in a Failures list and reported once the rest has run, never ignored."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shlex
import signal
from pathlib import Path

from imagepipe.errors import ToolFailed
from imagepipe.exec import cmdline, runner
from imagepipe.exec.retry import wait_until


class Failures(list[str]):
    """The teardown steps that failed, each as the tool's one line; `down` reports them together."""

    def run(self, argv: list[str]) -> runner.Result | None:
        try:
            return runner.run(argv, stage="cluster")
        except ToolFailed as e:
            self.append(str(e))
            return None


def kill_cgroup(root: Path) -> None:
    for _ in range(3):
        pids = cgroup_pids(root)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not cgroup_pids(root), timeout=5, interval=0.1)


def sandboxes(directory: Path) -> bool:
    """Whether a pod network namespace of the cluster still holds an address in its IPAM store."""
    store = directory / "cni/ipam"
    return any(p.name[0].isdigit() for p in store.rglob("*") if p.is_file())


def cgroup_pids(root: Path) -> list[int]:
    pids: list[int] = []
    if not root.exists():
        return pids
    for procs in root.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids += [int(p) for p in procs.read_text().split()]
    return pids


def remove_cgroups(root: Path) -> None:
    if not root.exists():
        return
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        root.rmdir()


def remove_masquerade(network: str, subnet: str, failures: Failures) -> None:
    """The CNI bridge plugin's ipMasq chains for pods whose teardown never ran (a killed node): each chain
    carries the network's name in its comment, and is jumped to from POSTROUTING for the pod's address."""
    read = failures.run(cmdline.nat_rules())
    if read is None:
        return
    net = ipaddress.IPv4Network(subnet)
    chains = set(re.findall(rf'-A (CNI-[0-9a-f]+) .*name: \\?"{re.escape(network)}\\?"', read.stdout))
    for line in read.stdout.splitlines():
        m = re.match(r"-A POSTROUTING -s (\S+) .*-j (CNI-[0-9a-f]+)", line)
        if m and ipaddress.IPv4Network(m.group(1), strict=False).subnet_of(net):
            failures.run(cmdline.nat_delete("POSTROUTING", shlex.split(line)[2:]))
            chains.add(m.group(2))
    for chain in sorted(chains):
        if failures.run(cmdline.nat_flush_chain(chain)) is not None:
            failures.run(cmdline.nat_delete_chain(chain))


def remove_service_route(cluster_id: str, failures: Failures) -> None:
    """local.LocalCluster's DNAT rule for the `kubernetes` Service, found by its comment."""
    read = failures.run(cmdline.nat_rules())
    for line in read.stdout.splitlines() if read is not None else []:
        if line.startswith("-A PREROUTING ") and f"imagepipe-{cluster_id} kubernetes service" in line:
            failures.run(cmdline.nat_delete("PREROUTING", shlex.split(line)[2:]))


def mount_points() -> set[str]:
    """The host's mount points (bind mounts of the same file system included, which os.path.ismount misses)."""
    with open("/proc/self/mountinfo") as f:
        # field 5, with the kernel's octal escapes for space, tab, newline and backslash
        return {re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in f}


def unmount(point: Path, failures: Failures) -> None:
    """`point` unmounted while it is a mount point (a file may be mounted more than once there)."""
    for _ in range(4):
        if str(point) not in mount_points() or failures.run(cmdline.umount(point)) is None:
            return


def remove_link(device: str, failures: Failures) -> None:
    if Path("/sys/class/net", device).exists():
        failures.run(cmdline.link_delete(device))
