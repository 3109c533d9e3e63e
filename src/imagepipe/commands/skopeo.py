"""argv builders for skopeo, and how a registry is reached (plain HTTP on loopback only)."""

from __future__ import annotations

from pathlib import Path

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")

__all__ = [
    "LOOPBACK_HOSTS", "registry_is_local", "skopeo_copy", "skopeo_copy_from_storage", "skopeo_dir_to_storage",
    "skopeo_inspect", "skopeo_standalone_sign", "skopeo_to_dir", "tls_flag",
]


def registry_is_local(ref_or_host: str) -> bool:
    host = ref_or_host.split("/", 1)[0]
    return host.rsplit(":", 1)[0] in LOOPBACK_HOSTS or host in LOOPBACK_HOSTS


def tls_flag(ref: str, *, name: str = "--tls-verify") -> list[str]:
    """Loopback registries speak plain HTTP; everything else keeps TLS verification on."""
    return [f"{name}=false"] if registry_is_local(ref) else []


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


def skopeo_to_dir(src: str, layout: Path) -> list[str]:
    """An image (docker://REF, or containers-storage:NAME when given so) into a `dir:` layout."""
    source = src if src.startswith("containers-storage:") else f"docker://{src}"
    tls = [] if src.startswith("containers-storage:") else tls_flag(src, name="--src-tls-verify")
    return ["skopeo", "copy", "-q", *tls, source, f"dir:{layout}"]


def skopeo_dir_to_storage(layout: Path, image: str) -> list[str]:
    return ["skopeo", "copy", "-q", f"dir:{layout}", f"containers-storage:{image}"]


def skopeo_standalone_sign(manifest: Path, reference: str, fingerprint: str, output: Path) -> list[str]:
    return ["skopeo", "standalone-sign", str(manifest), reference, fingerprint, "-o", str(output)]
