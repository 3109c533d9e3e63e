"""Stage `verify`: the pushed image pulled by digest and proved against the contract (imagepipe.checks)."""

from __future__ import annotations

from dataclasses import dataclass

from imagepipe import hostenv
from imagepipe.checks.types import VerifyOptions, VerifyResult
from imagepipe.checks.verifier import Verifier
from imagepipe.context import Context
from imagepipe.errors import UsageError
from imagepipe.refs import ImageRef, PushedImage


@dataclass(frozen=True)
class Verified:
    """What promote needs: the image, and the result of verifying exactly that digest."""

    image: PushedImage
    result: VerifyResult


def alone(ctx: Context) -> PushedImage:
    """`verify REF@sha256:…` on its own: an image built elsewhere."""
    if len(ctx.args.target) != 1:
        raise UsageError("verify takes one image: python build/pipeline.py verify REGISTRY/REPO@DIGEST")
    return PushedImage(ImageRef.parse(ctx.args.target[0]))


def run(ctx: Context, image: PushedImage) -> Verified:
    hostenv.ensure_mount_namespace(ctx.profile)
    pull = ctx.access(image.ref.registry, stage="verify").tool if image.ref.registry else None
    options = VerifyOptions(max_size_mb=ctx.args.max_size, database_url=ctx.args.database_url,
                            state_dir=ctx.state_dir, keep=ctx.args.keep, labels=ctx.labels, pull_auth=pull)
    return Verified(image, Verifier(ctx.profile, str(image), options).run())
