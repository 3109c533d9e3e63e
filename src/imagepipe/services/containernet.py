"""Where a bridged container reaches this host: podman's default network's gateway (the address
`host.containers.internal` resolves to). Services started for containers (the throw-away PostgreSQL) listen
on loopback and that address only."""

from __future__ import annotations

import socket

from imagepipe.errors import PipelineError
from imagepipe.exec import cmdline, runner
from imagepipe.host import podman
from imagepipe.host.profile import HostProfile


def _assigned(address: str) -> bool:
    with socket.socket() as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True


def bridge(profile: HostProfile, image: str, *, labels: dict[str, str] | None = None) -> tuple[str, str]:
    """(gateway, subnet) of podman's default network, with its bridge up: the bridge exists only once a
    container has used it, so a no-op container of `image` brings it up when needed. Inside a pod the
    containers share the pod's network: the stand-ins and the database are on its loopback."""
    if profile.in_pod:
        return "127.0.0.1", "127.0.0.1/32"
    facts = podman.network(profile, "podman", stage="verify")
    if facts is None or not facts.subnets:
        raise PipelineError("podman's default network `podman` is missing: run `podman network ls`, or reinstall "
                            "podman's network configuration (provision)", stage="verify")
    gateway, subnet = facts.subnets[0]
    if not _assigned(gateway):
        runner.run(cmdline.podman_run(profile, image, remove=True, labels=labels, entrypoint="",
                                       command=["true"]), stage="verify", timeout=120)
    return gateway, subnet
