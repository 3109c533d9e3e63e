"""The cosign CLI (sigstore/cosign v2), built from its Go module by ci/sigstore's go.mod/go.sum (ours, pinned;
a module apart from ci/interop, so cosign's many dependencies never move oras's and crane's). Cached outside
the clone, keyed by cosign's version and by the go.mod/go.sum that built it, so a machine builds it once."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from imagepipe.cluster.binaries import CACHE, Binaries, go, go_build
from imagepipe.errors import PipelineError
from imagepipe.paths import ROOT
from imagepipe.ui import output

MODULE = ROOT / "ci/sigstore"
PACKAGE = "github.com/sigstore/cosign/v2"
COMMAND = f"{PACKAGE}/cmd/cosign"


def version() -> str:
    """The cosign version go.mod pins."""
    match = re.search(rf"^require {re.escape(PACKAGE)} (v[\d.]+)$", (MODULE / "go.mod").read_text(), re.M)
    if match is None:
        raise PipelineError(f"{MODULE / 'go.mod'} does not require {PACKAGE}", stage="test")
    return match.group(1)


def cache_dir() -> Path:
    key = hashlib.sha256((MODULE / "go.sum").read_bytes() + (MODULE / "go.mod").read_bytes()).hexdigest()
    return CACHE / "sigstore" / f"{version()}-{key[:12]}"


def cached() -> Binaries | None:
    where = cache_dir()
    return Binaries(where) if (where / ".complete").exists() else None


def ensure() -> Binaries:
    """The cached build, building it first when this machine has none of this go.mod/go.sum."""
    found = cached()
    if found is not None:
        return found
    toolchain = go()  # PipelineError naming the cause where no Go can be had
    target, ver = cache_dir(), version()
    output.stage(f"==> test: building cosign {ver} from its Go module (once per machine; cached in {target})")
    # what `cosign version` reports, as cosign's own Makefile sets it
    flags = f"-s -w -X sigs.k8s.io/release-utils/version.gitVersion={ver}"
    return go_build(toolchain, MODULE, [("cosign", COMMAND, flags)], target, stage="test", stamp=ver)


def cosign() -> Path:
    """The cosign binary's path: the pipeline image's own (IMAGEPIPE_COSIGN, the same pinned build), else
    this machine's cached build, built first where it is missing."""
    given = os.environ.get("IMAGEPIPE_COSIGN")
    return Path(given) if given else ensure().path("cosign")
