"""Stage `provision`: a pyinfra deploy that prepares this machine as a build host.

Idempotent by construction: pyinfra compares facts (installed packages, file contents) with the wanted
state and only runs commands for the difference, so a second run reports "no changes".
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass

from imagepipe.errors import PipelineError
from imagepipe.host import emulation
from imagepipe.pipeline.context import Context
from imagepipe.ui import output

log = logging.getLogger("imagepipe.pipeline.stages.provision")

PACKAGES = [
    "buildah", "podman", "skopeo", "crun", "docker-registry",  # build, run, inspect, store images
    "debootstrap",  # the offline python:3.11-slim stand-in
    "postgresql", "libpq-dev",  # throw-away databases for verify/tests; libpq headers for psycopg's C build
    "util-linux", "git", "ca-certificates", "xz-utils", "gcc",
    "wrk",  # load generator of the benchmark
    "gnupg", "lighttpd",  # image signatures (simple signing) and the server that publishes them
    "pass",  # the password store docker-credential-pass reads (credential helpers, and their tests)
    # the local Kubernetes for the CI half (imagepipe.cluster): its store, container runtime and pod network
    "etcd-server", "containerd", "runc", "containernetworking-plugins", "iptables", "iproute2",
    # linux/arm64 images built and run here under emulation (imagepipe.host.emulation)
    "qemu-user-static", "binfmt-support",
]

# Loopback registries speak plain HTTP; declaring them insecure lets every containers tool talk to them.
REGISTRIES_CONF = """\
# Written by build/pipeline.py provision: the embedded registry is plain HTTP on loopback.
[[registry]]
location = "127.0.0.1:5000"
insecure = true

[[registry]]
location = "localhost:5000"
insecure = true
"""
# Debian's runc cannot set rlimits inside these VMs; crun can.
CONTAINERS_CONF = """\
# Written by build/pipeline.py provision.
[engine]
runtime = "crun"
"""


@dataclass
class ProvisionResult:
    changed: list[str]
    unchanged: list[str]


def provision(*, verbose: bool = False) -> ProvisionResult:
    from pyinfra.api.config import Config
    from pyinfra.api.connect import connect_all
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.inventory import Inventory
    from pyinfra.api.operation import add_op
    from pyinfra.api.operations import run_ops
    from pyinfra.api.state import State
    from pyinfra.operations import apt, files

    if not verbose:
        logging.getLogger("pyinfra").setLevel(logging.WARNING)
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config(SUDO=os.geteuid() != 0))  # sudo only when not root
    ops = {}
    try:
        connect_all(state)
        ops["apt packages"] = add_op(
            state, apt.packages, name="build host packages", packages=PACKAGES,
            update=True, cache_time=24 * 3600, no_recommends=True,
        )
        ops["registries.conf"] = add_op(
            state, files.put, name="local registry is insecure (HTTP)", src=io.StringIO(REGISTRIES_CONF),
            dest="/etc/containers/registries.conf.d/50-imagepipe.conf", mode="644",
        )
        ops["containers.conf"] = add_op(
            state, files.put, name="podman uses crun", src=io.StringIO(CONTAINERS_CONF),
            dest="/etc/containers/containers.conf.d/50-imagepipe.conf", mode="644",
        )
        run_ops(state)
    except PyinfraError as e:
        raise PipelineError(f"provisioning failed: {e} (re-run with --verbose for pyinfra's output)",
                            stage="provision") from e
    result = ProvisionResult(changed=[], unchanged=[])
    (result.changed if emulation.ensure("arm64") else result.unchanged).append("arm64 emulation (binfmt_misc)")
    for label, per_host in ops.items():
        for meta in per_host.values():
            if not meta.did_succeed():
                raise PipelineError(f"provisioning step '{label}' failed (re-run with --verbose)",
                                    stage="provision")
            (result.changed if meta.did_change() else result.unchanged).append(label)
    return result


def run(ctx: Context, _: None = None) -> None:
    """The stage: prepare this machine, say what changed."""
    result = provision(verbose=ctx.args.verbose)
    if result.changed:
        output.say(f"changed: {', '.join(result.changed)}")
    else:
        output.say("no changes: the host was already prepared")
