"""argv builders for buildah."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imagepipe.exec.cmdline.skopeo import ToolAuth, auth_flags
from imagepipe.host.profile import HostProfile

__all__ = [
    "buildah_bud", "buildah_containers", "buildah_from", "buildah_images", "buildah_mount", "buildah_push",
    "buildah_rm", "buildah_rmi", "buildah_umount", "buildah_version"
]


def buildah_bud(
    profile: HostProfile,
    *,
    containerfile: Path,
    context: Path,
    tags: Sequence[str],
    layers: bool = True,
    ca_bundle: Path | None = None,
    wheelhouse: Path | None = None,
    timestamp: int | None = None,
    build_args: dict[str, str] | None = None,
    target: str | None = None,
    pull: str = "never",
    no_cache: bool = False,
    platform: str | None = None,
    from_image: str | None = None,
) -> list[str]:
    # docker format: OCI has no HEALTHCHECK field; --force-rm: intermediate containers go even when the build
    # fails or is cancelled
    argv = ["buildah", "bud", "--format", "docker", "--force-rm"]
    if no_cache:
        argv.append("--no-cache")
    if profile.hybrid_cgroups:
        argv += ["--isolation", "chroot"]  # OCI isolation needs crun, which refuses hybrid cgroups
    argv += [f"--layers={'true' if layers else 'false'}", f"--pull={pull}"]
    if ca_bundle is not None:
        argv += ["-v", f"{ca_bundle}:/run/host-ca.crt:ro"]
    if wheelhouse is not None:
        argv += ["-v", f"{wheelhouse}:/run/wheels:ro"]
    if timestamp is not None:
        argv += ["--timestamp", str(timestamp)]
    for key, value in (build_args or {}).items():
        argv += ["--build-arg", f"{key}={value}"]
    if target:
        argv += ["--target", target]
    if platform:  # another architecture: its RUN steps under qemu user emulation
        argv += ["--platform", platform]
    if from_image:  # in place of the first FROM: that platform's base, kept under its own local name
        argv += ["--from", from_image]
    for tag in tags:
        argv += ["-t", tag]
    argv += ["-f", str(containerfile), str(context)]
    return argv


def buildah_push(image: str, dest: str, *, digestfile: Path, auth: ToolAuth | None = None) -> list[str]:
    return ["buildah", "push", *auth_flags(dest, auth), "--digestfile", str(digestfile), image, f"docker://{dest}"]


def buildah_containers() -> list[str]:
    """buildah's working containers, one name per line."""
    return ["buildah", "containers", "--format", "{{.ContainerName}}"]


def buildah_version() -> list[str]:
    return ["buildah", "--version"]


def buildah_from(image: str, *, name: str | None = None) -> list[str]:
    """A working container of a local image (to mount its tree without running it)."""
    return ["buildah", "from", "--pull=false", "--quiet", *(["--name", name] if name else []), image]


def buildah_mount(container: str) -> list[str]:
    return ["buildah", "mount", container]


def buildah_umount(container: str) -> list[str]:
    return ["buildah", "umount", container]


def buildah_rm(*containers: str) -> list[str]:
    return ["buildah", "rm", *containers]


def buildah_images() -> list[str]:
    """Local images, one NAME:TAG per line."""
    return ["buildah", "images", "--format", "{{.Name}}:{{.Tag}}"]


def buildah_rmi(*images: str, prune: bool = False) -> list[str]:
    return ["buildah", "rmi", "--prune"] if prune else ["buildah", "rmi", "-f", *images]
