"""argv builders for buildah, podman and skopeo."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imagepipe.hostenv import NS_FILE, HostProfile

__all__ = [
    "LOOPBACK_HOSTS", "buildah_bud", "buildah_containers", "buildah_from", "buildah_images", "buildah_mount",
    "buildah_push", "buildah_rm", "buildah_rmi", "buildah_umount", "buildah_version", "podman", "podman_exec",
    "podman_healthcheck_run", "podman_history", "podman_image_exists", "podman_import", "podman_inspect",
    "podman_logs", "podman_ps_labelled", "podman_pull", "podman_rm", "podman_run", "podman_tag",
    "registry_is_local", "skopeo_copy", "skopeo_copy_from_storage", "skopeo_dir_to_storage", "skopeo_inspect",
    "skopeo_standalone_sign", "skopeo_to_dir", "tls_flag"
]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def registry_is_local(ref_or_host: str) -> bool:
    host = ref_or_host.split("/", 1)[0]
    return host.rsplit(":", 1)[0] in LOOPBACK_HOSTS or host in LOOPBACK_HOSTS


def tls_flag(ref: str, *, name: str = "--tls-verify") -> list[str]:
    """Loopback registries speak plain HTTP; everything else keeps TLS verification on."""
    return [f"{name}=false"] if registry_is_local(ref) else []


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
    for tag in tags:
        argv += ["-t", tag]
    argv += ["-f", str(containerfile), str(context)]
    return argv


def buildah_push(image: str, dest: str, *, digestfile: Path, creds: str | None = None,
                 authfile: Path | None = None) -> list[str]:
    argv = ["buildah", "push", *tls_flag(dest), "--digestfile", str(digestfile)]
    if creds:
        argv += ["--creds", creds]
    if authfile:
        argv += ["--authfile", str(authfile)]
    return [*argv, image, f"docker://{dest}"]


def podman(profile: HostProfile, *args: str) -> list[str]:
    """podman, entering the prepared mount namespace on hybrid-cgroup hosts."""
    if profile.needs_mount_namespace:
        return ["nsenter", f"--mount={NS_FILE}", "--", "podman", *args]
    return ["podman", *args]


def podman_run(
    profile: HostProfile,
    image: str,
    *,
    name: str | None = None,
    detach: bool = False,
    remove: bool = False,
    env: dict[str, str] | None = None,
    publish: Sequence[str] = (),
    network: str | None = None,
    user: str | None = None,
    entrypoint: str | None = None,
    read_only: bool = False,
    tmpfs: Sequence[str] = (),
    cap_drop_all: bool = False,
    cap_add: Sequence[str] = (),
    no_new_privileges: bool = False,
    privileged: bool = False,
    volumes: Sequence[str] = (),
    labels: dict[str, str] | None = None,
    add_hosts: Sequence[str] = (),
    command: Sequence[str] = (),
) -> list[str]:
    """`podman run` with one flag per option, in podman's order (long, and flat on purpose: one line per
    option reads faster than helpers, and the table test pins every combination the pipeline uses)."""
    args = ["run"]
    if detach:
        args.append("-d")
    if remove:
        args.append("--rm")
    if name:
        args += ["--name", name]
    if profile.hybrid_cgroups:
        args.append("--cgroups=disabled")
    # Explicit limits well below this process's hard limits (podman's defaults are higher). Capped at
    # 16384: crun refused nproc 65536 on a host reporting a hard limit of 96365.
    if profile.nofile_hard < 1048576 or profile.nproc_hard < 4194304:
        nofile, nproc = min(profile.nofile_hard, 16384), min(profile.nproc_hard, 16384)
        args += ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    for mapping in publish:
        args += ["-p", mapping]
    if network:
        args += ["--network", network]
    for host in add_hosts:
        args += ["--add-host", host]
    if user:
        args += ["--user", user]
    if entrypoint is not None:
        args += ["--entrypoint", entrypoint]
    if read_only:
        args.append("--read-only")
    for mount in tmpfs:
        args += ["--tmpfs", mount]
    if cap_drop_all:
        args += ["--cap-drop", "ALL"]
    for cap in cap_add:
        args += ["--cap-add", cap]
    if no_new_privileges:
        args += ["--security-opt", "no-new-privileges"]
    if privileged:
        args.append("--privileged")
    for volume in volumes:
        args += ["-v", volume]
    for key, value in (labels or {}).items():
        args += ["--label", f"{key}={value}"]
    return podman(profile, *args, image, *command)


def podman_pull(profile: HostProfile, ref: str) -> list[str]:
    return podman(profile, "pull", "-q", *tls_flag(ref), ref)


def skopeo_inspect(ref: str, *, raw: bool = False, config: bool = False, creds: str | None = None) -> list[str]:
    argv = ["skopeo", "inspect", *tls_flag(ref)]
    if raw:
        argv.append("--raw")
    if config:
        argv.append("--config")
    if creds:
        argv += ["--creds", creds]
    return [*argv, f"docker://{ref}"]


def skopeo_copy(src: str, dest: str, *, creds: str | None = None, sign_by: str | None = None,
                registries_d: Path | None = None) -> list[str]:
    """Registry-side retag: copies the manifest by digest, blobs are already there; with `sign_by`, a simple
    signing signature of the destination is written to the lookaside store that `registries_d` names."""
    argv = ["skopeo"]
    if registries_d is not None:
        argv += ["--registries.d", str(registries_d)]
    argv += ["copy", "--preserve-digests", *tls_flag(src, name="--src-tls-verify"),
             *tls_flag(dest, name="--dest-tls-verify")]
    if sign_by:
        argv += ["--sign-by", sign_by]
    if creds:
        argv += ["--src-creds", creds, "--dest-creds", creds]
    return [*argv, f"docker://{src}", f"docker://{dest}"]


def skopeo_copy_from_storage(image: str, dest: str) -> list[str]:
    """A local image (containers-storage) into a registry, e.g. the base for kaniko's registry mirror."""
    return ["skopeo", "copy", "-q", *tls_flag(dest, name="--dest-tls-verify"), f"containers-storage:{image}",
            f"docker://{dest}"]


def buildah_containers() -> list[str]:
    """buildah's working containers, one name per line."""
    return ["buildah", "containers", "--format", "{{.ContainerName}}"]


def buildah_version() -> list[str]:
    return ["buildah", "--version"]


def podman_inspect(profile: HostProfile, kind: str, name: str) -> list[str]:
    """`podman <kind> inspect NAME` as JSON (kind: image, container, network); imagepipe.podmanfacts reads it."""
    return podman(profile, kind, "inspect", name)


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


def skopeo_to_dir(src: str, layout: Path) -> list[str]:
    """An image (docker://REF, or containers-storage:NAME when given so) into a `dir:` layout."""
    source = src if src.startswith("containers-storage:") else f"docker://{src}"
    tls = [] if src.startswith("containers-storage:") else tls_flag(src, name="--src-tls-verify")
    return ["skopeo", "copy", "-q", *tls, source, f"dir:{layout}"]


def skopeo_dir_to_storage(layout: Path, image: str) -> list[str]:
    return ["skopeo", "copy", "-q", f"dir:{layout}", f"containers-storage:{image}"]


def skopeo_standalone_sign(manifest: Path, reference: str, fingerprint: str, output: Path) -> list[str]:
    return ["skopeo", "standalone-sign", str(manifest), reference, fingerprint, "-o", str(output)]


def podman_ps_labelled(profile: HostProfile, label: str) -> list[str]:
    """Ids of every container (any state) carrying `label` (KEY=VALUE)."""
    return podman(profile, "ps", "-a", "-q", "--filter", f"label={label}")


def podman_rm(profile: HostProfile, *names: str, grace: int = 0) -> list[str]:
    """Force-remove containers, giving each `grace` seconds to stop."""
    return podman(profile, "rm", "-f", "-t", str(grace), *names)


def podman_image_exists(profile: HostProfile, ref: str) -> list[str]:
    return podman(profile, "image", "exists", ref)


def podman_tag(profile: HostProfile, src: str, dest: str) -> list[str]:
    return podman(profile, "tag", src, dest)


def podman_import(profile: HostProfile, tarball: Path, ref: str, *, changes: Sequence[str] = ()) -> list[str]:
    """A root filesystem tarball as an image, with Containerfile instructions applied (`--change`)."""
    argv = ["import"]
    for change in changes:
        argv += ["--change", change]
    return podman(profile, *argv, str(tarball), ref)


def podman_history(profile: HostProfile, image: str) -> list[str]:
    """The instruction that created each layer, one per line, untruncated."""
    return podman(profile, "history", "--no-trunc", "--format", "{{.CreatedBy}}", image)


def podman_logs(profile: HostProfile, name: str) -> list[str]:
    return podman(profile, "logs", name)


def podman_exec(profile: HostProfile, name: str, *argv: str) -> list[str]:
    return podman(profile, "exec", name, *argv)


def podman_healthcheck_run(profile: HostProfile, name: str) -> list[str]:
    """One run of the image's HEALTHCHECK (podman schedules them with systemd timers, absent here)."""
    return podman(profile, "healthcheck", "run", name)
