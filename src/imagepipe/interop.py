"""The standard registry clients of the interop tests, built from their Go modules by ci/interop's
go.mod/go.sum (ours, pinned): oras and crane, and a registry with the OCI 1.1 referrers API
(go-containerregistry's registry package, whose referrers support `crane registry serve` leaves off).
Cached outside the clone, keyed by the go.sum and our source, so a machine builds them once."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from imagepipe import output, runner
from imagepipe.cluster.binaries import CACHE, Binaries, go
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
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    output.stage(f"==> test: building oras, crane and a referrers-API registry from their Go modules (once; {target})")
    with tempfile.TemporaryDirectory(prefix="imagepipe-gobuild-") as tmp:
        env = {"GOCACHE": f"{tmp}/cache", "GOMODCACHE": f"{tmp}/mod", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod",
               "GOTOOLCHAIN": "local"}
        for name, package in TARGETS.items():
            runner.run([toolchain, "build", "-C", str(MODULE), "-trimpath", "-ldflags", "-s -w", "-o",
                        str(partial / name), package], env=env, stage="test", timeout=1800, what=f"building {name}")
        runner.run(["chmod", "-R", "u+w", tmp], ok_codes=(0, 1))
    (partial / ".complete").write_text("\n".join(TARGETS) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return Tools(target)
