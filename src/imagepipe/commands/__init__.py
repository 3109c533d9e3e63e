"""Every argv the pipeline runs, built here and nowhere else: pure functions, no I/O, table-tested without
binaries (tests/pipeline/test_commands.py): buildah.py, podman.py, skopeo.py (with how registries are
reached), host.py (git, gpg, PostgreSQL, debootstrap, hadolint, wrk, …), kube.py (the local cluster's
processes), and configs.py (the config files of the registry and the signature server)."""

from imagepipe.commands.buildah import *  # noqa: F403
from imagepipe.commands.buildah import __all__ as _buildah
from imagepipe.commands.configs import *  # noqa: F403
from imagepipe.commands.configs import __all__ as _configs
from imagepipe.commands.host import *  # noqa: F403
from imagepipe.commands.host import __all__ as _host
from imagepipe.commands.kube import *  # noqa: F403
from imagepipe.commands.kube import __all__ as _kube
from imagepipe.commands.podman import *  # noqa: F403
from imagepipe.commands.podman import __all__ as _podman
from imagepipe.commands.skopeo import *  # noqa: F403
from imagepipe.commands.skopeo import __all__ as _skopeo

__all__ = [*_buildah, *_configs, *_host, *_kube, *_podman, *_skopeo]
