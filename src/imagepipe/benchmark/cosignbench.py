"""The bench's cosign row: what promote's cosign step costs, beside verify's seconds of the same run.

The bench runs no promote (no tag moves, no GPG signatures), so this signs the digest verify has just measured,
in the bench's own registry, with the pipeline's own key, then makes the three attestations promote makes:
the SBOM (from verify's inventory), the SLSA provenance and verify's own predicate, through promote's code
(`promote.cosign_predicates`, `cosigning.sign_and_attest`). Only cosign's calls are timed."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from imagepipe.checks.types import VerifyResult
from imagepipe.errors import PipelineError
from imagepipe.exec import cmdline
from imagepipe.host import git, podman
from imagepipe.host.profile import HostProfile
from imagepipe.image import mount
from imagepipe.image.containerfile import BASE_REF
from imagepipe.image.refs import BuildFacts
from imagepipe.paths import ROOT
from imagepipe.pipeline.stages import promote
from imagepipe.supplychain import cosigning, inventory, provenance, sbom

# what cosigning.registry gives promote for the embedded registry: anonymous, plain HTTP on loopback
EMBEDDED = cmdline.CosignRegistry(tls_verify=False)


def measure(profile: HostProfile, state_dir: Path, work: Path, *, image: str, digest: str, verify: VerifyResult,
            built: tuple[float, float]) -> dict[str, Any]:
    """{"seconds", "attestations"} for `image`@`digest` (REGISTRY/REPO, as pushed; `built`: its cold build's
    wall-clock start and end, for the provenance), or {"error"} when cosign cannot be had or refused: the rest
    of the run's figures are kept."""
    try:
        key = cosigning.pipeline_key(state_dir)
        predicates = promote.cosign_predicates(documents(profile, image, digest, verify, built), verify,
                                               digest=digest, where="pod" if profile.in_pod else "host")
        seconds = cosigning.sign_and_attest(key, f"{image}@{digest}", predicates, EMBEDDED, work / "cosign")
    except PipelineError as e:
        return {"error": str(e)}
    return {"seconds": seconds, "attestations": len(predicates)}


def documents(profile: HostProfile, image: str, digest: str, verify: VerifyResult,
              built: tuple[float, float]) -> tuple[str, str]:
    """(the SBOM, the in-toto provenance statement) of the bench's image, as promote.attach builds them."""
    contents = verify.inventory
    if contents is None:  # verify's static pass failed: read again, as promote does
        with mount.mounted(f"{image}@{digest}") as root:
            contents = inventory.read(root)
    base = podman.image(profile, BASE_REF, stage="bench")
    base_digest = base.digest if base else None
    bom = sbom.build(image=image, digest=digest, base_ref=BASE_REF, base_digest=base_digest,
                     debs=list(contents.debs), dists=list(contents.dists))
    source, commit = git.provenance_source()
    requirements = {str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in (ROOT / "backend/requirements.txt", ROOT / "backend/requirements.in") if p.is_file()}
    facts = BuildFacts("buildah")
    described = provenance.BuildFacts(
        image=image, digest=digest, containerfile=str(ROOT / "build/Containerfile"), context=str(ROOT / "backend"),
        source_uri=source, commit=commit, builder=facts.builder, builder_version=facts.builder_version,
        base_ref=BASE_REF, base_digest=base_digest, requirements=requirements, invocation="bench",
        started=built[0], finished=built[1])
    return bom, provenance.statement(described)
