"""Removing what the local cluster put on the host, for `down`: whatever is left of its processes (all in
its cgroup), its cgroups, and the CNI's masquerade rules for its network when a pod's teardown never ran."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

from imagepipe.retry import wait_until


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


def remove_masquerade(network: str, subnet: str) -> None:
    """The CNI bridge plugin's ipMasq chains for pods whose teardown never ran (a killed node): each chain
    carries the network's name in its comment, and is jumped to from POSTROUTING for the pod's address."""
    out = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    net = ipaddress.IPv4Network(subnet)
    chains = set(re.findall(rf'-A (CNI-[0-9a-f]+) .*name: \\?"{re.escape(network)}\\?"', out))
    for line in out.splitlines():
        m = re.match(r"-A POSTROUTING -s (\S+) .*-j (CNI-[0-9a-f]+)", line)
        if m and ipaddress.IPv4Network(m.group(1), strict=False).subnet_of(net):
            subprocess.run(["iptables", "-t", "nat", "-D", "POSTROUTING", *shlex.split(line)[2:]],
                           capture_output=True)
            chains.add(m.group(2))
    for chain in chains:
        subprocess.run(["iptables", "-t", "nat", "-F", chain], capture_output=True)
        subprocess.run(["iptables", "-t", "nat", "-X", chain], capture_output=True)


def remove_service_route(cluster_id: str) -> None:
    """local.LocalCluster's DNAT rule for the `kubernetes` Service, found by its comment."""
    out = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("-A PREROUTING ") and f"imagepipe-{cluster_id} kubernetes service" in line:
            subprocess.run(["iptables", "-t", "nat", "-D", "PREROUTING", *shlex.split(line)[2:]], capture_output=True)
