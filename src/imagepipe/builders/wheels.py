"""A host-side wheelhouse for requirements.txt, per architecture: built once (compiling psycopg's C extension
once), keyed by the file's hash, then mounted into builds so they need no network for Python packages. The
host's own architecture is built by this interpreter's pip; another one inside that platform's base image
under emulation (with the compiler and libpq headers the builder stage would install), so every wheel is
for the image's own interpreter and libc."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import sys
from pathlib import Path

from imagepipe.exec import cmdline, runner
from imagepipe.host.profile import HostProfile
from imagepipe.image.containerfile import base_ref
from imagepipe.image.platforms import Platform, host
from imagepipe.paths import HOST_CA_BUNDLE, MACHINE_CACHE

# Inside the foreign base: what the builder stage installs to compile, then pip wheel as on the host.
FOREIGN_SCRIPT = (
    "set -eu; if [ -f /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi; "
    "apt-get update -qq -o Acquire::Languages=none; "
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev libpq-dev "
    ">/dev/null; CFLAGS='-g0 -O2' pip wheel -q --disable-pip-version-check {hashes} -r /req/requirements.txt "
    "-w /out")


def wheelhouse(requirements: Path, profile: HostProfile | None = None, platform: Platform | None = None,
               *, root: Path | None = None) -> Path:
    """The wheelhouse for this requirements.txt and platform: built once per machine (MACHINE_CACHE, shared by
    every checkout and state directory: its key is the file's hash), under a lock so two runs that need the
    same one build it once; a build cut short is started again."""
    platform = platform or host()
    target = place(requirements, platform, root)
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when the process dies
        if not (target / ".complete").exists():
            _build(requirements, target, profile, platform)
    return target


def place(requirements: Path, platform: Platform, root: Path | None = None) -> Path:
    """Where the wheelhouse for these requirements and this platform lives. Its name keys the build's layer
    cache too (the Containerfile's WHEELHOUSE): the file's hash, the platform, and for the host's, the
    interpreter that builds it (another platform's is built by that platform's base image, whose Python the
    image runs)."""
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    python = "" if platform.emulated else f"-py{sys.version_info.major}{sys.version_info.minor}"
    return (root or MACHINE_CACHE / "wheelhouse") / f"{key}-{platform.slug}{python}"


def _build(requirements: Path, target: Path, profile: HostProfile | None, platform: Platform) -> None:
    shutil.rmtree(target, ignore_errors=True)  # a cut-short build's leftovers
    target.mkdir(parents=True)
    # every download checked against the file's hashes (the image's offline install trusts this directory)
    hashed = "--hash=" in requirements.read_text()
    if not platform.emulated:
        runner.run(cmdline.pip_wheel(requirements, target, require_hashes=hashed), stage="build", timeout=1800,
                   what="building the wheelhouse")
    else:
        assert profile is not None, "another platform's wheelhouse is built in a container"
        script = FOREIGN_SCRIPT.format(hashes="--require-hashes" if hashed else "")
        # the host's CA bundle, as the build gets it: PyPI may sit behind a proxy only the host trusts
        ca = [f"{HOST_CA_BUNDLE}:/run/host-ca.crt:ro"] if HOST_CA_BUNDLE.exists() else []
        runner.run(cmdline.podman_run(profile, base_ref(platform), remove=True, platform=str(platform),
                                       volumes=[f"{requirements.parent}:/req:ro", f"{target}:/out", *ca],
                                       command=["sh", "-c", script]),
                   stage="build", timeout=3600, what=f"building the {platform} wheelhouse (emulated)")
    (target / ".complete").touch()
