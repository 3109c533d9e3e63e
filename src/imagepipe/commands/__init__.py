"""Every argv the pipeline runs, built here and nowhere else: pure functions, no I/O, table-tested without
binaries (tests/pipeline/test_commands.py). containers.py: buildah, podman and skopeo; host.py: everything
else (git, gpg, PostgreSQL, debootstrap, hadolint, wrk, …); configs.py: the config files of the registry and
the signature server."""

from imagepipe.commands.configs import *  # noqa: F403
from imagepipe.commands.configs import __all__ as _configs
from imagepipe.commands.containers import *  # noqa: F403
from imagepipe.commands.containers import __all__ as _containers
from imagepipe.commands.host import *  # noqa: F403
from imagepipe.commands.host import __all__ as _host

__all__ = [*_configs, *_containers, *_host]
