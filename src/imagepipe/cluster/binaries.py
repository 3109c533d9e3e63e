"""The local cluster's Kubernetes binaries, built from the k8s.io/kubernetes Go module by ci/cluster's
go.mod/go.sum (ours, pinned to one version) and cached outside the clone, keyed by version and by the
go.sum that built them, so a machine builds them once (about 10 minutes on 2 cores; 336 MB)."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from imagepipe.cluster import gotoolchain
from imagepipe.errors import PipelineError
from imagepipe.exec import runner
from imagepipe.paths import MACHINE_CACHE, ROOT
from imagepipe.ui import output

log = logging.getLogger("imagepipe.cluster")

MODULE = ROOT / "ci/cluster"
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet")
CACHE = MACHINE_CACHE


def version() -> str:
    """The Kubernetes version go.mod pins."""
    match = re.search(r"^require k8s\.io/kubernetes (v[\d.]+)$", (MODULE / "go.mod").read_text(), re.M)
    if match is None:
        raise PipelineError(f"{MODULE / 'go.mod'} does not require k8s.io/kubernetes", stage="cluster")
    return match.group(1)


@dataclass(frozen=True)
class Binaries:
    dir: Path

    def path(self, name: str) -> Path:
        return self.dir / name


def cache_dir() -> Path:
    key = hashlib.sha256((MODULE / "go.sum").read_bytes() + (MODULE / "pause/main.go").read_bytes()).hexdigest()
    return CACHE / "kubernetes" / f"{version()}-{key[:12]}"


def cached() -> Binaries | None:
    where = cache_dir()
    return Binaries(where) if (where / ".complete").exists() else None


def go() -> str:
    """A Go that builds our modules: the machine's when new enough, else the toolchain fetched once from the
    Go module proxy (imagepipe.cluster.gotoolchain). Raises PipelineError with the cause when neither can be
    had."""
    return gotoolchain.ensure(CACHE)


def unavailable() -> str | None:
    """Why the binaries cannot be had on this machine (None: they are cached, or a Go can build them)."""
    if cached() is not None:
        return None
    try:
        go()
    except PipelineError as e:
        return f"the local cluster's Kubernetes binaries cannot be built here: {e.message}"
    return None


def ensure() -> Binaries:
    """The cached binaries, building them first when this machine has none of this version."""
    found = cached()
    if found is not None:
        return found
    toolchain = go()
    target, ver = cache_dir(), version()
    output.stage(f"==> cluster: building Kubernetes {ver} from the Go module (once per machine; cached in {target})")
    flags = f"-s -w -X k8s.io/component-base/version.gitVersion={ver}"
    builds = [(name, f"k8s.io/kubernetes/cmd/{name}", flags) for name in COMPONENTS] + [("pause", "./pause", "-s -w")]
    return go_build(toolchain, MODULE, builds, target, stage="cluster", stamp=ver)


def go_build(toolchain: str, module: Path, builds: list[tuple[str, str, str]], target: Path, *, stage: str,
             stamp: str) -> Binaries:
    """Each (name, package, ldflags) of `module` built into `target`, which appears whole or not at all. Build
    and module caches of their own, removed afterwards (for Kubernetes they peak near 3.6 GB)."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="imagepipe-gobuild-") as tmp:
        env = {"GOCACHE": f"{tmp}/cache", "GOMODCACHE": f"{tmp}/mod", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod",
               "GOTOOLCHAIN": "local"}
        for name, package, flags in builds:
            runner.run([toolchain, "build", "-C", str(module), "-trimpath", "-ldflags", flags, "-o",
                        str(partial / name), package], env=env, stage=stage, timeout=3600, what=f"building {name}")
            log.info("built %s", name)
        # the module cache is read-only on disk: make it removable
        runner.run(["chmod", "-R", "u+w", tmp], ok_codes=(0, 1))
    (partial / ".complete").write_text(stamp + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return Binaries(target)
