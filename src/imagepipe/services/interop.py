"""The standard registry clients of the interop tests, built from their Go modules by ci/interop's
go.mod/go.sum (ours, pinned): oras and crane, a registry with the OCI 1.1 referrers API
(go-containerregistry's registry package, whose referrers support `crane registry serve` leaves off), and
docker-credential-pass (docker/docker-credential-helpers), the real helper the credential-helper tests use.
Cached outside the clone, keyed by the go.sum and our source, so a machine builds them once."""

from __future__ import annotations

import hashlib
from pathlib import Path

from imagepipe.cluster.binaries import CACHE, Binaries, go, go_build
from imagepipe.paths import ROOT
from imagepipe.ui import output

MODULE = ROOT / "ci/interop"
TARGETS = {"oras": "oras.land/oras/cmd/oras", "crane": "github.com/google/go-containerregistry/cmd/crane",
           "referrers-registry": "./referrers-registry",
           "docker-credential-pass": "github.com/docker/docker-credential-helpers/pass/cmd"}


Tools = Binaries  # a directory of built programs, as the cluster's


def cache_dir() -> Path:
    inputs = [MODULE / "go.sum", MODULE / "go.mod", MODULE / "referrers-registry/main.go"]
    key = hashlib.sha256(b"".join(p.read_bytes() for p in inputs) + " ".join(TARGETS).encode()).hexdigest()
    return CACHE / "interop" / key[:12]


def cached() -> Tools | None:
    where = cache_dir()
    return Tools(where) if (where / ".complete").exists() else None


def ensure() -> Tools:
    found = cached()
    if found is not None:
        return found
    toolchain = go()  # PipelineError naming the cause where no Go can be had: these tests never skip
    target = cache_dir()
    output.stage(f"==> test: building oras, crane and a referrers-API registry from their Go modules (once; {target})")
    builds = [(name, package, "-s -w") for name, package in TARGETS.items()]
    return go_build(toolchain, MODULE, builds, target, stage="test", stamp=" ".join(TARGETS))
