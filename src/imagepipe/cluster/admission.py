"""sigstore's policy-controller for the local cluster: its admission webhook (`cmd/webhook`) built from
ci/admission's go.mod/go.sum (ours, pinning v0.13.1 and repeating the two replace directives of its own
go.mod, which a dependent module must) and cached outside the clone like cosign (imagepipe.services.sigstore),
and the controller's image in the cluster's registry: that static binary and the host's CA bundle on an
empty base, built here (no registry on the internet is asked for anything). Installed by
imagepipe.cluster.policycontroller; the image is what ci/policy-controller's Deployment runs."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from imagepipe.cluster import images
from imagepipe.cluster.binaries import CACHE, Binaries, go, go_build
from imagepipe.errors import PipelineError
from imagepipe.paths import ROOT
from imagepipe.ui import output

MODULE = ROOT / "ci/admission"
PACKAGE = "github.com/sigstore/policy-controller"
COMMAND = f"{PACKAGE}/cmd/webhook"
BINARY = "webhook"
REPOSITORY = "imagepipe/policy-controller-webhook"  # in the cluster's registry


def version() -> str:
    """The policy-controller version go.mod pins."""
    match = re.search(rf"^require {re.escape(PACKAGE)} (v[\d.]+)$", (MODULE / "go.mod").read_text(), re.M)
    if match is None:
        raise PipelineError(f"{MODULE / 'go.mod'} does not require {PACKAGE}", stage="cluster")
    return match.group(1)


def _key() -> str:
    return hashlib.sha256((MODULE / "go.sum").read_bytes() + (MODULE / "go.mod").read_bytes()).hexdigest()[:12]


def cache_dir() -> Path:
    return CACHE / "admission" / f"{version()}-{_key()}"


def cached() -> Binaries | None:
    where = cache_dir()
    return Binaries(where) if (where / ".complete").exists() else None


def ensure() -> Binaries:
    """The cached build, building it first when this machine has none of this go.mod/go.sum (663 to 758 s of
    CPU, measured cold on 2 cores; 94 MB)."""
    found = cached()
    if found is not None:
        return found
    toolchain = go()  # PipelineError naming the cause where no Go can be had
    target, ver = cache_dir(), version()
    output.stage(f"==> cluster: building policy-controller {ver} from its Go module (once per machine; cached in "
                 f"{target})")
    # what the webhook logs as its version, as policy-controller's own Makefile sets it
    flags = f"-s -w -X sigs.k8s.io/release-utils/version.gitVersion={ver}"
    return go_build(toolchain, MODULE, [(BINARY, COMMAND, flags)], target, stage="cluster", stamp=ver)


def image_ref(registry: str) -> str:
    """Where the controller's image is kept in the cluster's registry: tagged by the build it holds."""
    return f"{registry}/{REPOSITORY}:{version()}-{_key()}"


def stock(registry: str) -> str:
    """The controller's image in the cluster's registry (the node pulls from nowhere else), made from this
    machine's build of the webhook (built first where missing); returns its reference."""
    return images.push_policy_controller(ensure().path(BINARY), image_ref(registry))
