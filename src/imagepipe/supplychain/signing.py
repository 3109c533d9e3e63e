"""Signing with containers/image "simple signing" (GPG), the mechanism Debian's containers stack supports
(its skopeo is built with sigstore signing disabled: `Debian-local change: sigstore disabled`).

Keys: `--signing-key FINGERPRINT` from the user's own keyring (GNUPGHOME), or a pipeline key generated once
into the state directory (ed25519, no passphrase, its GNUPGHOME 0700 and the private key file 0600; the
key never enters an image, a log or a report, only its fingerprint and public half do).

Signatures go to a lookaside store: written into a staging directory (`lookaside-staging`) and read back
over HTTP (`lookaside`) from the signature server (sigserver.py) or the address the user gives.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imagepipe.errors import PipelineError
from imagepipe.exec import cmdline, runner

KEY_PARAMS = """\
%no-protection
Key-Type: eddsa
Key-Curve: ed25519
Key-Usage: sign
Name-Real: imagepipe pipeline
Name-Email: imagepipe@localhost
Expire-Date: 0
%commit
"""


@dataclass(frozen=True)
class SigningKey:
    fingerprint: str
    gnupghome: Path | None  # None: the user's own keyring
    public_key: Path  # armored public key, for consumers' policy.json

    @property
    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.gnupghome)} if self.gnupghome else {}


def _gpg(args: list[str], env: dict[str, str], *, input: str | None = None, timeout: float | None = None,
         what: str | None = None, ok_codes: tuple[int, ...] = (0,)) -> runner.Result:
    return runner.run(cmdline.gpg(*args), env=env, stage="promote", input=input, timeout=timeout, what=what,
                      ok_codes=ok_codes)


SOCKET_MAX = 100  # a unix socket path is at most 107 bytes; gpg-agent's sockets live in GNUPGHOME


def short_home(home: Path) -> Path:
    """GNUPGHOME as gpg should be given it: the directory itself, or, when its sockets' paths would be too
    long for a unix socket (a deep state directory), a short symlink to it in the temp directory (without
    /run/user/<uid>, gpg-agent cannot start there: "No agent running")."""
    if len(str(home / "S.gpg-agent.browser")) <= SOCKET_MAX:
        return home
    alias = Path(tempfile.gettempdir()) / f"{ALIAS_PREFIX}{hashlib.sha256(str(home).encode()).hexdigest()[:12]}"
    if not (alias.is_symlink() and alias.resolve() == home.resolve()):
        sweep_aliases()  # only when one is made: short_home is called several times per signing
        alias.unlink(missing_ok=True)
        alias.symlink_to(home)
    return alias


ALIAS_PREFIX = "imagepipe-gnupg-"


def sweep_aliases(under: Path | None = None) -> list[Path]:
    """Removes our GNUPGHOME aliases whose home is gone (they serve no one), and, given `under`, those whose
    home is inside it (a test's own state directories, at the end of the session). Returns what it removed."""
    removed = []
    for alias in Path(tempfile.gettempdir()).glob(f"{ALIAS_PREFIX}*"):
        if not alias.is_symlink():
            continue
        target = Path(os.readlink(alias))
        if not target.exists() or (under is not None and target.is_relative_to(under)):
            alias.unlink(missing_ok=True)
            removed.append(alias)
    return removed


@contextlib.contextmanager
def agent_stopped(home: Path | None) -> Iterator[None]:
    """gpg, and skopeo through gpgme, start a gpg-agent for a GNUPGHOME on first use and leave it running for
    good (one per run and state directory, piling up). The pipeline's own homes get theirs stopped when the
    work is done; the user's keyring (home None) keeps its agent, which is theirs."""
    try:
        yield
    finally:
        if home is not None:
            runner.run(cmdline.gpgconf_kill_agent(), env={"GNUPGHOME": str(home)}, ok_codes=(0, 1, 2))


def pipeline_key(state_dir: Path) -> SigningKey:
    """The pipeline's own key: generated on first use, then reused."""
    home = state_dir / "signing" / "gnupg"
    try:
        return _pipeline_key(state_dir, home)
    finally:
        if home.exists():
            with agent_stopped(short_home(home)):
                pass


def _pipeline_key(state_dir: Path, home: Path) -> SigningKey:
    public = state_dir / "signing" / "pipeline-key.pub"
    fresh = not home.exists()
    if fresh:
        home.mkdir(parents=True)
        os.chmod(home, 0o700)
    env = {"GNUPGHOME": str(short_home(home))}
    if fresh:
        _gpg(["--gen-key"], env, input=KEY_PARAMS, timeout=120, what="generating the pipeline's signing key")
    fingerprint = _fingerprint(_gpg(["--with-colons", "--list-secret-keys"], env).stdout)
    for key_file in (home / "private-keys-v1.d").glob("*.key"):
        os.chmod(key_file, 0o600)
    public.write_text(_gpg(["--armor", "--export", fingerprint], env).stdout)
    return SigningKey(fingerprint, short_home(home), public)


def user_key(fingerprint: str, state_dir: Path) -> SigningKey:
    """A key from the user's keyring (their GNUPGHOME); its public half exported for consumers."""
    env: dict[str, str] = {}
    listed = _gpg(["--with-colons", "--list-secret-keys", fingerprint], env, ok_codes=(0, 2))
    if listed.code != 0 or "fpr:" not in listed.stdout:
        raise PipelineError(f"no secret key {fingerprint} in your GnuPG keyring: import it, or drop "
                            "--signing-key to use the pipeline's own key", stage="promote")
    full = _fingerprint(listed.stdout)
    public = state_dir / "signing" / f"{full}.pub"
    public.parent.mkdir(parents=True, exist_ok=True)
    public.write_text(_gpg(["--armor", "--export", full], env).stdout)
    return SigningKey(full, None, public)


def key_file(path: Path, state_dir: Path) -> SigningKey:
    """An armored secret key in a file (a Kubernetes Secret mounted into the pipeline's pod): imported into a
    keyring of this run's own, emptied first, so no key of an earlier run signs."""
    home = state_dir / "signing" / "imported"
    if home.exists():
        with agent_stopped(short_home(home)):
            pass
        shutil.rmtree(home)
    home.mkdir(parents=True)
    os.chmod(home, 0o700)
    env = {"GNUPGHOME": str(short_home(home))}
    try:
        imported = _gpg(["--import", str(path)], env, ok_codes=(0, 2))
        listed = _gpg(["--with-colons", "--list-secret-keys"], env, ok_codes=(0, 2))
        if "fpr:" not in listed.stdout:
            why = runner.first_error_line(imported.stderr) or "no secret key in it"
            raise PipelineError(f"--signing-key {path}: not an armored GPG secret key ({why}): export one with "
                                "`gpg --armor --export-secret-keys FINGERPRINT`", stage="promote")
        full = _fingerprint(listed.stdout)
        public = state_dir / "signing" / f"{full}.pub"
        public.write_text(_gpg(["--armor", "--export", full], env).stdout)
    finally:
        with agent_stopped(short_home(home)):
            pass
    return SigningKey(full, short_home(home), public)


def _fingerprint(colons: str) -> str:
    match = re.search(r"^fpr:+([0-9A-F]{40,64}):", colons, re.M)
    if match is None:
        raise PipelineError("gpg listed no key fingerprint", stage="promote")
    return match.group(1)


def registries_d(directory: Path, *, scope: str, staging: Path, lookaside: str) -> Path:
    """A registries.d directory telling containers/image where signatures of `scope` are written and read."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "imagepipe.yaml").write_text(
        f"docker:\n  {scope}:\n    lookaside: {lookaside}\n    lookaside-staging: file://{staging}\n")
    return directory


def sign_tag(src: str, dest: str, *, key: SigningKey, registries: Path, auth: cmdline.ToolAuth | None,
             all_images: bool = False) -> None:
    """Tag `dest` with `src`'s digest and sign it (simple signing, while copying)."""
    argv = cmdline.skopeo_copy(src, dest, auth=auth, sign_by=key.fingerprint, registries_d=registries,
                                all_images=all_images)
    runner.run(argv, stage="promote", timeout=600, env=key.env, what=f"signing {dest}")


def sign_manifest(manifest: bytes, reference: str, *, key: SigningKey, staging: Path, repo: str,
                  digest: str) -> Path:
    """A signature for any manifest (the SBOM and provenance artifacts), placed where the lookaside layout
    expects it: <staging>/<repo>@<algo>=<hex>/signature-N."""
    target = staging / f"{repo}@{digest.replace(':', '=')}"
    target.mkdir(parents=True, exist_ok=True)
    n = 1
    while (target / f"signature-{n}").exists():
        n += 1
    manifest_file = target / ".manifest.tmp"
    manifest_file.write_bytes(manifest)
    try:
        argv = cmdline.skopeo_standalone_sign(manifest_file, reference, key.fingerprint, target / f"signature-{n}")
        runner.run(argv, env=key.env, stage="promote", what="signing an attestation")
    finally:
        manifest_file.unlink(missing_ok=True)
    return target / f"signature-{n}"


def verify_signature(signature: bytes, public_key: Path, *, work: Path) -> tuple[str, dict[str, object]]:
    """(signer fingerprint, signed payload) of a simple-signing signature, checked against `public_key`;
    raises PipelineError when it does not verify."""
    import json

    home = work / "verify-gnupg"
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    home = short_home(home)
    env = {"GNUPGHOME": str(home)}
    with agent_stopped(home):
        runner.run(cmdline.gpg("--import", str(public_key)), env=env, ok_codes=(0, 1, 2), stream=False)
        # gpg's verdict is on the status fd (stderr), read whatever its exit code
        proc = runner.run(cmdline.gpg("--status-fd", "2", "--decrypt"), input=signature, env=env,
                          ok_codes=(0, 1, 2), stream=False)
    valid = re.search(r"\[GNUPG:\] VALIDSIG ([0-9A-F]+)", proc.stderr)
    if proc.code != 0 or valid is None:
        raise PipelineError("signature does not verify with the pipeline's public key", stage="attest")
    return valid.group(1), json.loads(proc.stdout)
