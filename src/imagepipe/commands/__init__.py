"""Every argv the pipeline runs, built here and nowhere else: pure functions, no I/O, table-tested without
binaries (tests/pipeline/test_commands.py). containers.py: buildah, podman, skopeo and the configs of the
services they talk to; host.py: everything else (git, gpg, PostgreSQL, debootstrap, hadolint, wrk, …)."""

from imagepipe.commands.containers import *  # noqa: F403
from imagepipe.commands.containers import __all__ as _containers
from imagepipe.commands.host import *  # noqa: F403
from imagepipe.commands.host import __all__ as _host

__all__ = [*_containers, *_host]
