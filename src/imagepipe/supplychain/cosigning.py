"""cosign signatures and in-toto attestations of a verified digest: the format Kyverno's `verifyImages` and
sigstore's policy-controller verify in a cluster (GPG simple signing, which promote also writes, is read
only by podman, skopeo and CRI-O).

Stored as cosign v2 stores them, beside the image in its repository: the tags `sha256-<hex>.sig` (the
signature) and `sha256-<hex>.att` (DSSE envelopes of in-toto statements). Every verifier reads that layout
today; cosign v3's bundles stored as referrers are not yet found by all of them.

No transparency log is reachable here, so none is written (`--tlog-upload=false`) or read
(`--insecure-ignore-tlog`), and verification is given an empty trusted root, so cosign asks no TUF
repository either (docs/supply-chain.md says how a team with Rekor turns the log on)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagepipe.errors import UsageError
from imagepipe.exec import cmdline, runner
from imagepipe.host.files import write_atomic
from imagepipe.registry.access import Access
from imagepipe.services import sigstore
from imagepipe.supplychain import verification

# the predicate types, as the in-toto statements name them (cosign's `cyclonedx` and `slsaprovenance1`)
SBOM_TYPE = "https://cyclonedx.org/bom"
PROVENANCE_TYPE = "https://slsa.dev/provenance/v1"
VERIFICATION_TYPE = verification.PREDICATE_TYPE  # ours: docs/verification-attestation.md
PREDICATE_TYPES = (SBOM_TYPE, PROVENANCE_TYPE, VERIFICATION_TYPE)
ANY_EXIT = tuple(range(256))  # verify answers with its exit code: a refusal is a finding, not a failure
# no Fulcio, no Rekor, no CT log: verification by key needs no trusted material, and this keeps cosign from
# fetching Sigstore's public trusted root on every call
EMPTY_TRUSTED_ROOT = {"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}


@dataclass(frozen=True)
class CosignKey:
    """What signs: `ref` is what cosign's --key is given (a file, env://VAR, k8s://NAMESPACE/SECRET or a KMS
    URI such as awskms:///…, gcpkms://…, hashivault://…); `public` its public half as a file; `password`
    unlocks a file or Secret key (COSIGN_PASSWORD; the pipeline's own key has none)."""
    ref: str
    public: Path
    password: str = ""
    own: bool = False  # the pipeline's key, generated into the state directory


def key_dir(state_dir: Path) -> Path:
    return state_dir / "cosign"


def pipeline_key(state_dir: Path) -> CosignKey:
    """The pipeline's own key pair, generated once into the state directory (the private half 0600, never
    printed; the state directory's lock keeps two runs from making it at once)."""
    where = key_dir(state_dir)
    key, pub = cmdline.cosign_key_pair(where)
    if not (key.is_file() and pub.is_file()):
        fresh = state_dir / f"cosign.new-{os.getpid()}"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(mode=0o700, parents=True)
        runner.run(cmdline.cosign_generate_key_pair(sigstore.cosign(), fresh), env=cmdline.cosign_env(password=""),
                   stage="promote", what="making the pipeline's cosign key pair")
        os.chmod(fresh / key.name, 0o600)
        shutil.rmtree(where, ignore_errors=True)  # a half-made pair of a killed run
        fresh.rename(where)
    return CosignKey(str(key), pub, "", own=True)


def user_key(spec: str, state_dir: Path) -> CosignKey:
    """--cosign-key: a file, env://, k8s:// or a KMS URI, given to cosign as it is; its public half is read
    once per run through cosign (`public-key`), before anything is built (promote.preflight), so a key cosign
    cannot open is one line then. A missing file was refused earlier, with the options (options.check)."""
    password = os.environ.get("COSIGN_PASSWORD", "")
    pub = key_dir(state_dir) / f"key-{hashlib.sha256(spec.encode()).hexdigest()[:12]}.pub"
    pub.parent.mkdir(parents=True, exist_ok=True)
    got = runner.run(cmdline.cosign_public_key(sigstore.cosign(), Path(spec) if "://" not in spec else spec,
                                               outfile=pub),
                     env=cmdline.cosign_env(password=password), stage="promote", ok_codes=(0, 1),
                     what=f"reading the public half of --cosign-key {spec}")
    if got.code != 0:
        pub.unlink(missing_ok=True)  # cosign creates the file before it fails: no empty public key is left
        raise UsageError(cannot_open(spec, got.stderr, password_set="COSIGN_PASSWORD" in os.environ))
    return CosignKey(spec, pub, password)


def cannot_open(spec: str, stderr: str, *, password_set: bool) -> str:
    """Why cosign cannot open --cosign-key, in one line with the fix: a password that does not decrypt it
    (cosign v2 says `decrypt: encrypted: decryption failed`), or something that is not a key it can read."""
    why = runner.first_error_line(stderr).removeprefix("error during command execution: ")
    if "decrypt" in why:
        password = ("COSIGN_PASSWORD does not decrypt it" if password_set else
                    "it is password-protected and COSIGN_PASSWORD is not set")
        return (f"--cosign-key {spec}: cosign cannot open it: {password} ({why}); set COSIGN_PASSWORD to the "
                "password the key was made with")
    if "://" in spec:
        return (f"--cosign-key {spec}: cosign cannot open it ({why}): give a reference cosign can read (env://VAR "
                "holding a key, k8s://NAMESPACE/SECRET, or a KMS key this machine's credentials reach)")
    return (f"--cosign-key {spec}: cosign cannot open it ({why}): give a cosign private key file (`cosign "
            "generate-key-pair` writes one), env://VAR, k8s://NAMESPACE/SECRET or a KMS URI")


def key_for(spec: str | None, state_dir: Path) -> CosignKey:
    return user_key(spec, state_dir) if spec else pipeline_key(state_dir)


def registry(access: Access) -> cmdline.CosignRegistry:
    """How cosign reaches the run's registry: the tools' auth file as a Docker config (DOCKER_CONFIG), the
    registry's CA bundle (certs.d with the system's roots), plain HTTP where the registry speaks it."""
    config = None
    if access.tool.authfile is not None:
        config = access.tool.authfile.parent / "cosign-docker"
        config.mkdir(mode=0o700, exist_ok=True)
        link = config / "config.json"
        if not link.is_symlink():
            link.symlink_to(access.tool.authfile)
    ca = Path(access.verify) if isinstance(access.verify, str) else None
    return cmdline.CosignRegistry(docker_config=config, ca_bundle=ca, tls_verify=access.tool.tls_verify)


def sign(key: CosignKey, ref: str, reg: cmdline.CosignRegistry) -> None:
    """`ref` (REPO@sha256:…) signed by `key`: the tag sha256-<hex>.sig."""
    runner.run(cmdline.cosign_sign(sigstore.cosign(), key.ref, ref, registry=reg), stage="promote", timeout=300,
               env=cmdline.cosign_env(registry=reg, password=key.password), what=f"cosign signing {ref}")


def attest(key: CosignKey, ref: str, predicate_type: str, predicate: dict[str, Any], reg: cmdline.CosignRegistry,
           work: Path) -> None:
    """An in-toto statement of `predicate_type` about `ref`, signed by `key`: added to sha256-<hex>.att."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"predicate-{hashlib.sha256(predicate_type.encode()).hexdigest()[:8]}.json"
    write_atomic(path, json.dumps(predicate, sort_keys=True))
    runner.run(cmdline.cosign_attest(sigstore.cosign(), key.ref, ref, predicate_type=predicate_type, predicate=path,
                                     registry=reg),
               stage="promote", timeout=300, env=cmdline.cosign_env(registry=reg, password=key.password),
               what=f"cosign attesting {ref} ({predicate_type})")


def sign_and_attest(key: CosignKey, ref: str, predicates: Sequence[tuple[str, dict[str, Any]]],
                    reg: cmdline.CosignRegistry, work: Path, *, clock: Callable[[], float] = time.monotonic) -> float:
    """`ref` signed, then one attestation per (predicate type, predicate), all by `key`; `work` (the predicate
    files) removed after. Returns the seconds cosign took for all of it (promote's report, the bench's row);
    a cosign built on this machine's first use is built before the clock starts."""
    sigstore.cosign()
    t0 = clock()
    try:
        sign(key, ref, reg)
        for predicate_type, predicate in predicates:
            attest(key, ref, predicate_type, predicate, reg, work)
        return clock() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def trusted_root(work: Path) -> Path:
    path = work / "trusted-root.json"
    if not path.is_file():
        work.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(EMPTY_TRUSTED_ROOT))
    return path


def verify(public: Path, ref: str, reg: cmdline.CosignRegistry, work: Path, *, stage: str = "attest") -> str:
    """"" when `ref` carries a signature by `public`'s private half, else cosign's reason in one line."""
    got = runner.run(cmdline.cosign_verify(sigstore.cosign(), public, ref, registry=reg,
                                           trusted_root=trusted_root(work)),
                     stage=stage, ok_codes=ANY_EXIT, timeout=300, env=cmdline.cosign_env(registry=reg))
    return "" if got.code == 0 else (runner.first_error_line(got.stderr) or f"cosign verify exited {got.code}")


def attestations(public: Path, ref: str, predicate_type: str, reg: cmdline.CosignRegistry, work: Path, *,
                 stage: str = "attest") -> tuple[list[dict[str, Any]], str]:
    """(the in-toto statements of `predicate_type` about `ref` signed by `public`'s private half, why none)."""
    got = runner.run(cmdline.cosign_verify_attestation(sigstore.cosign(), public, ref, predicate_type=predicate_type,
                                                       registry=reg, trusted_root=trusted_root(work)),
                     stage=stage, ok_codes=ANY_EXIT, timeout=300, env=cmdline.cosign_env(registry=reg))
    if got.code != 0:
        return [], runner.first_error_line(got.stderr) or f"cosign verify-attestation exited {got.code}"
    return [statement(line) for line in got.stdout.splitlines() if line.strip()], ""


def statement(envelope_line: str) -> dict[str, Any]:
    """The in-toto statement inside one DSSE envelope line of verify-attestation's output."""
    envelope = json.loads(envelope_line)
    decoded: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return decoded


def problems(public: Path, ref: str, digest: str, reg: cmdline.CosignRegistry, work: Path) -> list[str]:
    """What `attest verify` finds wrong with one image's cosign proofs (empty: signed by the key, and each
    of the three attestations signed by it, about this digest; the verification attestation's every check
    passed)."""
    found = []
    why = verify(public, ref, reg, work)
    if why:
        found.append(f"cosign signature: {why}")
    for predicate_type in PREDICATE_TYPES:
        statements, why = attestations(public, ref, predicate_type, reg, work)
        if not statements:
            found.append(f"cosign attestation {predicate_type}: {why or 'none'}")
            continue
        about = {s.get("digest", {}).get("sha256") for st in statements for s in st.get("subject", [])}
        if digest.split(":", 1)[1] not in about:
            found.append(f"cosign attestation {predicate_type}: about {sorted(about)}, not {digest}")
        if predicate_type == VERIFICATION_TYPE:
            failed = sorted({c.get("id", "?") for st in statements for c in st["predicate"].get("checks", [])
                             if c.get("result") != "pass"})
            if failed or not all(st["predicate"].get("passed") is True for st in statements):
                found.append(f"cosign attestation {predicate_type}: records failed checks {failed}")
    return found
