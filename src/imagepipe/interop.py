"""The standard registry clients of the interop tests, built from their Go modules by ci/interop's
go.mod/go.sum (ours, pinned): oras and crane, and a registry with the OCI 1.1 referrers API
(go-containerregistry's registry package, whose referrers support `crane registry serve` leaves off).
Cached outside the clone, keyed by the go.sum and our source, so a machine builds them once."""

from __future__ import annotations

import hashlib
from pathlib import Path

from imagepipe import output
from imagepipe.cluster.binaries import CACHE, Binaries, go, go_build
from imagepipe.errors import PipelineError
from imagepipe.paths import ROOT

MODULE = ROOT / "ci/interop"
TARGETS = {"oras": "oras.land/oras/cmd/oras", "crane": "github.com/google/go-containerregistry/cmd/crane",
           "referrers-registry": "./referrers-registry"}


Tools = Binaries  # a directory of built programs, as the cluster's


def cache_dir() -> Path:
    key = hashlib.sha256((MODULE / "go.sum").read_bytes()
                         + (MODULE / "referrers-registry/main.go").read_bytes()).hexdigest()
    return CACHE / "interop" / key[:12]


def cached() -> Tools | None:
    where = cache_dir()
    return Tools(where) if (where / ".complete").exists() else None


def unavailable() -> str | None:
    if cached() is not None:
        return None
    return None if go() is not None else "Go is not installed, so oras and crane cannot be built here"


def ensure() -> Tools:
    found = cached()
    if found is not None:
        return found
    toolchain = go()
    if toolchain is None:
        raise PipelineError("cannot build oras and crane: Go is not installed", stage="test")
    target = cache_dir()
    output.stage(f"==> test: building oras, crane and a referrers-API registry from their Go modules (once; {target})")
    builds = [(name, package, "-s -w") for name, package in TARGETS.items()]
    return go_build(toolchain, MODULE, builds, target, stage="test", stamp=" ".join(TARGETS))
