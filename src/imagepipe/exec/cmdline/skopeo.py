"""argv builders for skopeo, and what the containers tools are told about reaching a registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")

__all__ = [
    "LOOPBACK_HOSTS", "registry_is_local", "skopeo_copy", "skopeo_copy_from_storage", "skopeo_dir_to_storage",
    "skopeo_inspect", "skopeo_standalone_sign", "skopeo_to_dir", "tls_flag", "ToolAuth", "auth_flags",
]


@dataclass(frozen=True)
class ToolAuth:
    """What a containers tool is given for the run's registry (imagepipe.registry.access decides it): an auth
    file holding only that registry's entry, mode 0600 (so no secret is ever in argv), and whether to
    verify TLS (False: it speaks plain HTTP, or the user passed --tls-verify=false)."""
    authfile: Path | None = None
    tls_verify: bool = True


def registry_is_local(ref_or_host: str) -> bool:
    host = ref_or_host.split("/", 1)[0]
    return host.rsplit(":", 1)[0] in LOOPBACK_HOSTS or host in LOOPBACK_HOSTS


def tls_flag(ref: str, *, name: str = "--tls-verify", auth: ToolAuth | None = None) -> list[str]:
    """TLS off where the run's access says so; without one, loopback registries are taken as plain HTTP."""
    if auth is not None:
        return [] if auth.tls_verify else [f"{name}=false"]
    return [f"{name}=false"] if registry_is_local(ref) else []


def auth_flags(ref: str, auth: ToolAuth | None, *, prefix: str = "") -> list[str]:
    """--tls-verify and --authfile for one side of a tool's transfer (prefix "src-" or "dest-" for skopeo)."""
    flags = tls_flag(ref, name=f"--{prefix}tls-verify", auth=auth)
    if auth is not None and auth.authfile is not None:
        flags += [f"--{prefix}authfile", str(auth.authfile)]
    return flags


def skopeo_inspect(ref: str, *, raw: bool = False, config: bool = False, auth: ToolAuth | None = None) -> list[str]:
    argv = ["skopeo", "inspect", *auth_flags(ref, auth)]
    if raw:
        argv.append("--raw")
    if config:
        argv.append("--config")
    return [*argv, f"docker://{ref}"]


def skopeo_copy(src: str, dest: str, *, auth: ToolAuth | None = None, sign_by: str | None = None,
                registries_d: Path | None = None, all_images: bool = False) -> list[str]:
    """Registry-side retag: copies the manifest by digest, blobs are already there; with `sign_by`, a simple
    signing signature of the destination is written to the lookaside store that `registries_d` names."""
    argv = ["skopeo"]
    if registries_d is not None:
        argv += ["--registries.d", str(registries_d)]
    # --all: an index is copied whole (without it skopeo would pick the host's platform and change the digest)
    argv += ["copy", *(["--all"] if all_images else []), "--preserve-digests", *auth_flags(src, auth, prefix="src-"),
             *auth_flags(dest, auth, prefix="dest-")]
    if sign_by:
        argv += ["--sign-by", sign_by]
    return [*argv, f"docker://{src}", f"docker://{dest}"]


def skopeo_copy_from_storage(image: str, dest: str) -> list[str]:
    """A local image (containers-storage) into a registry, e.g. the base for kaniko's registry mirror."""
    return ["skopeo", "copy", "-q", *tls_flag(dest, name="--dest-tls-verify"), f"containers-storage:{image}",
            f"docker://{dest}"]


def skopeo_to_dir(src: str, layout: Path, *, auth: ToolAuth | None = None, compress: str | None = None) -> list[str]:
    """An image (docker://REF, or containers-storage:NAME when given so) into a `dir:` layout; `compress`
    (gzip, zstd): its layers compressed so (what a registry would store; bench measures it)."""
    source = src if src.startswith("containers-storage:") else f"docker://{src}"
    tls = [] if src.startswith("containers-storage:") else auth_flags(src, auth, prefix="src-")
    packed = ["--dest-compress", "--dest-compress-format", compress] if compress else []
    if compress == "zstd":  # a docker v2s2 manifest has no zstd layer type: OCI only (which has no HEALTHCHECK)
        packed = ["--format", "oci", *packed]
    return ["skopeo", "copy", "-q", *tls, *packed, source, f"dir:{layout}"]


def skopeo_dir_to_storage(layout: Path, image: str) -> list[str]:
    return ["skopeo", "copy", "-q", f"dir:{layout}", f"containers-storage:{image}"]


def skopeo_standalone_sign(manifest: Path, reference: str, fingerprint: str, output: Path) -> list[str]:
    return ["skopeo", "standalone-sign", str(manifest), reference, fingerprint, "-o", str(output)]
