"""argv builders for cosign (sigstore/cosign v2, built from ci/sigstore by imagepipe.services.sigstore): a key
pair, signatures and attestations by key, with no transparency log (none is reachable here), stored as
cosign v2 stores them: the tags `sha256-<hex>.sig` and `.att` beside the image, which Kyverno and
policy-controller read.

cosign reads neither an `--authfile` nor certs.d, so `CosignRegistry` says how it reaches the registry, and
`cosign_env` is the environment each call adds (the credentials' directory, the key's password).

Seen by hand with v2.6.5 against Debian's registry: a one-letter repository (`127.0.0.1:PORT/x`) is
refused ("could not parse reference": go-containerregistry wants two characters or more); verify and
verify-attestation ask Sigstore's TUF repository for its trusted root on every call and, where that fails,
warn and go on (its cache is $TUF_ROOT, else ~/.sigstore/root); verify exits 10 without signatures and 12
without one by the key, verify-attestation 1 for either; the signatures live in the image's repository, so
an image copied to another repository arrives unsigned."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CosignRegistry", "cosign_attest", "cosign_copy", "cosign_env", "cosign_generate_key_pair",
           "cosign_key_pair", "cosign_public_key", "cosign_sign", "cosign_verify", "cosign_verify_attestation"]


@dataclass(frozen=True)
class CosignRegistry:
    """What cosign is given for the run's registry.

    `docker_config`: a directory holding the tools' auth document as `config.json`, passed as DOCKER_CONFIG
    (go-containerregistry's keychain reads it; podman's REGISTRY_AUTH_FILE only where no Docker config
    exists at all, so it is not used). `ca_bundle`: `--registry-cacert`, which replaces the system roots
    instead of adding to them, so it must hold both (registry.access.trust_bundle writes such a bundle).
    `tls_verify` False: plain HTTP and unverified TLS are both allowed, as `--tls-verify=false` allows both
    to the containers tools (a loopback registry speaking plain HTTP needs neither flag: cosign falls back
    to HTTP there by itself)."""
    docker_config: Path | None = None
    ca_bundle: Path | None = None
    tls_verify: bool = True

    def flags(self) -> list[str]:
        flags = [] if self.tls_verify else ["--allow-insecure-registry", "--allow-http-registry"]
        return flags + (["--registry-cacert", str(self.ca_bundle)] if self.ca_bundle is not None else [])


def cosign_env(*, registry: CosignRegistry | None = None, password: str | None = None) -> dict[str, str]:
    """The environment a cosign call adds: DOCKER_CONFIG for the credentials, COSIGN_PASSWORD for the private
    key (read there first; without it cosign asks a terminal, or reads stdin to its end)."""
    env = {}
    if registry is not None and registry.docker_config is not None:
        env["DOCKER_CONFIG"] = str(registry.docker_config)
    if password is not None:
        env["COSIGN_PASSWORD"] = password
    return env


def cosign_key_pair(directory: Path, *, prefix: str = "cosign") -> tuple[Path, Path]:
    """The private and the public half `cosign_generate_key_pair` writes into `directory`."""
    return directory / f"{prefix}.key", directory / f"{prefix}.pub"


def cosign_generate_key_pair(binary: Path, directory: Path, *, prefix: str = "cosign") -> list[str]:
    """A new key pair in `directory` (the private half 0600, encrypted with COSIGN_PASSWORD from the
    environment). Over an existing pair cosign asks before overwriting, which fails without a terminal: give
    it a directory of its own."""
    return [str(binary), "generate-key-pair", "--output-key-prefix", str(directory / prefix)]


def cosign_public_key(binary: Path, key: Path | str, *, outfile: Path | None = None) -> list[str]:
    """The public half of a private key (COSIGN_PASSWORD unlocks it), on stdout or into `outfile`."""
    return [str(binary), "public-key", "--key", str(key), *(["--outfile", str(outfile)] if outfile else [])]


def _by_digest(ref: str) -> str:
    if "@sha256:" not in ref:
        raise ValueError(f"cosign is given images by digest, not {ref!r}: a tag may move between the signature "
                         "and the push")
    return ref


def _registry(registry: CosignRegistry | None) -> list[str]:
    return registry.flags() if registry is not None else []


def cosign_sign(binary: Path, key: Path | str, ref: str, *, registry: CosignRegistry | None = None) -> list[str]:
    """A signature of `ref` (REPO@sha256:…) by `key`, pushed as the tag `sha256-<hex>.sig`; no transparency
    log entry, and no prompt."""
    return [str(binary), "sign", "--key", str(key), "--tlog-upload=false", "--yes", *_registry(registry),
            _by_digest(ref)]


def cosign_attest(binary: Path, key: Path | str, ref: str, *, predicate_type: str, predicate: Path,
                  registry: CosignRegistry | None = None) -> list[str]:
    """An in-toto attestation of `ref` (the predicate file, its type a URI or one of cosign's names) signed
    by `key`, added to the tag `sha256-<hex>.att` (each call adds one; the earlier stay)."""
    return [str(binary), "attest", "--key", str(key), "--type", predicate_type, "--predicate", str(predicate),
            "--tlog-upload=false", "--yes", *_registry(registry), _by_digest(ref)]


def cosign_copy(binary: Path, ref: str, dest: str, *, registry: CosignRegistry | None = None) -> list[str]:
    """The image `ref` (REPO@sha256:…) with its signatures, attestations and SBOM (the `.sig`, `.att` and
    `.sbom` tags) copied to `dest` (REPO[:TAG]; the image is also tagged `sha256-<hex>` there). A signature
    names the digest, not the repository, so it verifies at the copy. An existing `dest` of another digest is
    an error (no --force)."""
    return [str(binary), "copy", *_registry(registry), _by_digest(ref), dest]


def _trusted_root(path: Path | None) -> list[str]:
    """A trusted root file: given one (even an empty one), cosign asks no TUF repository for Sigstore's."""
    return ["--trusted-root", str(path)] if path is not None else []


def cosign_verify(binary: Path, public_key: Path, ref: str, *, registry: CosignRegistry | None = None,
                  trusted_root: Path | None = None) -> list[str]:
    """Exit 0 when a signature of `ref` by the key's private half is there (its payloads as JSON on
    stdout). The transparency log is not consulted: the signatures were never put there."""
    return [str(binary), "verify", "--key", str(public_key), "--insecure-ignore-tlog=true",
            *_trusted_root(trusted_root), *_registry(registry), _by_digest(ref)]


def cosign_verify_attestation(binary: Path, public_key: Path, ref: str, *, predicate_type: str,
                              registry: CosignRegistry | None = None, trusted_root: Path | None = None) -> list[str]:
    """Exit 0 when an attestation of `predicate_type` on `ref` is signed by the key's private half (the
    envelopes as JSON lines on stdout)."""
    return [str(binary), "verify-attestation", "--key", str(public_key), "--type", predicate_type,
            "--insecure-ignore-tlog=true", *_trusted_root(trusted_root), *_registry(registry), _by_digest(ref)]
