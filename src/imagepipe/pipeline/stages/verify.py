"""Stage `verify`: the pushed image pulled by digest and proved against the contract (imagepipe.checks)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from imagepipe.checks import advisories
from imagepipe.checks.types import VerifyOptions, VerifyResult
from imagepipe.checks.verifier import Verifier
from imagepipe.errors import UsageError
from imagepipe.host import quirks
from imagepipe.image.platforms import Platform
from imagepipe.image.refs import ImageRef, PushedImage
from imagepipe.pipeline import multiarch
from imagepipe.pipeline.context import Context
from imagepipe.registry.oci import INDEX_TYPES, Registry


@dataclass(frozen=True)
class Verified:
    """What promote needs: the image, and the result of verifying exactly that digest."""

    image: PushedImage
    result: VerifyResult
    kubernetes: dict[str, Any] | None = None  # with --kube-context: the digest as a Deployment (stages.kubeproof)


def alone(ctx: Context) -> PushedImage:
    """`verify REF@sha256:…` on its own: an image built elsewhere."""
    if len(ctx.args.target) != 1:
        raise UsageError("verify takes one image: python build/pipeline.py verify REGISTRY/REPO@DIGEST")
    return PushedImage(ImageRef.parse(ctx.args.target[0]))


def run(ctx: Context, image: PushedImage, platform: Platform | None = None) -> Verified:
    """One image; an index named from outside (`verify REF@sha256:…`): each requested platform's image in it
    (the host's by default), another architecture under emulation."""
    quirks.ensure_mount_namespace(ctx.profile)
    ignores = advisories.ignore_file(ctx.args.building.containerfile)
    advisories.preflight(ctx.args.verifying.vuln_db, max_age_days=ctx.args.verifying.vuln_db_max_age, ignores=ignores)
    access = ctx.access(image.ref.registry, stage="verify")
    v = ctx.args.verifying
    options = VerifyOptions(max_size_mb=v.max_size, database_url=v.database_url,
                            state_dir=ctx.state_dir, keep=v.keep, labels=ctx.labels, pull_auth=access.tool,
                            platform=str(platform) if platform else None, vuln_db=ctx.args.verifying.vuln_db,
                            vuln_db_max_age_days=ctx.args.verifying.vuln_db_max_age, vuln_ignores=ignores)
    if image.tag is None:  # named from outside: it may be an index
        fetched = Registry(access, image.ref.repository, stage="verify").get_manifest(image.digest)
        if fetched is not None and fetched[1].split(";")[0] in INDEX_TYPES:
            listed = dict(multiarch.platforms_of(fetched[0]))
            missing = [str(p) for p in ctx.args.platforms if str(p) not in listed]
            if missing:
                raise UsageError(f"{image} is an index without {', '.join(missing)} (it has "
                                 f"{', '.join(listed)}): pass --platform with one of those")
            results = []
            for p in ctx.args.platforms:
                one = PushedImage(image.ref.with_digest(listed[str(p)]))
                each = dataclasses.replace(options, platform=str(p))
                results.append((p, Verifier(ctx.profile, str(one), each).run()))
            return Verified(image, multiarch.combined(image, results))
    return Verified(image, Verifier(ctx.profile, str(image), options).run())
