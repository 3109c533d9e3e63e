"""`pipeline.py attest verify REF@sha256:…`: signatures, SBOM and provenance checked downstream."""

from __future__ import annotations

from imagepipe.cli.verbs.signer import cosign_public_key, lookaside_url, public_key
from imagepipe.errors import UsageError
from imagepipe.exec import exitcodes
from imagepipe.image.refs import ImageRef
from imagepipe.pipeline.context import Context
from imagepipe.supplychain import attest
from imagepipe.ui import output


def run(ctx: Context) -> int:
    a = ctx.args
    if len(a.target) != 2 or a.target[0] != "verify":
        raise UsageError("usage: python build/pipeline.py attest verify REGISTRY/REPO@sha256:…")
    ref = ImageRef.parse(a.target[1])
    if ref.digest is None or ref.registry is None:
        raise UsageError(f"attest verify takes a digest reference, REGISTRY/REPO@sha256:… (got {a.target[1]})")
    access = ctx.access(ref.registry, stage="attest")
    cosign_public = cosign_public_key(ctx)
    problems = attest.verify(ref, public_key=public_key(ctx), lookaside=lookaside_url(ctx), access=access,
                             cosign_public=cosign_public)
    for problem in problems:
        output.error(f"attest: {problem}")
    if problems:
        return exitcodes.CHECKS_FAILED
    cosign = ("cosign: signed, and its SBOM, provenance and verification attestations signed by the key, about "
              "this digest, every check passed" if cosign_public is not None else
              "cosign: not checked (no --cosign-public-key, and this state directory has no cosign key pair)")
    output.block(f"{a.target[1]}: signed, SBOM and provenance attached, signed and naming this digest; {cosign}")
    return exitcodes.OK
