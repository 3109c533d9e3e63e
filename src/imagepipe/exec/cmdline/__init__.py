"""Every argv the pipeline runs, built here and nowhere else: pure functions, no I/O, table-tested without
binaries (tests/pipeline/test_commands.py, test_cosign_commands.py): buildah.py, podman.py, skopeo.py (with
how registries are reached), cosign.py (signatures and attestations by key), host.py (git, gpg, PostgreSQL,
debootstrap, hadolint, wrk, …), kube.py (the local cluster's processes), and configs.py (the config files of
the registry and the signature server)."""

from imagepipe.exec.cmdline.buildah import *  # noqa: F403
from imagepipe.exec.cmdline.buildah import __all__ as _buildah
from imagepipe.exec.cmdline.configs import *  # noqa: F403
from imagepipe.exec.cmdline.configs import __all__ as _configs
from imagepipe.exec.cmdline.cosign import *  # noqa: F403
from imagepipe.exec.cmdline.cosign import __all__ as _cosign
from imagepipe.exec.cmdline.host import *  # noqa: F403
from imagepipe.exec.cmdline.host import __all__ as _host
from imagepipe.exec.cmdline.kube import *  # noqa: F403
from imagepipe.exec.cmdline.kube import __all__ as _kube
from imagepipe.exec.cmdline.podman import *  # noqa: F403
from imagepipe.exec.cmdline.podman import __all__ as _podman
from imagepipe.exec.cmdline.skopeo import *  # noqa: F403
from imagepipe.exec.cmdline.skopeo import __all__ as _skopeo

__all__ = [*_buildah, *_configs, *_cosign, *_host, *_kube, *_podman, *_skopeo]
