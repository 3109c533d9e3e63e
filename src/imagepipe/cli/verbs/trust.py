"""`pipeline.py trust [--install]`: the containers policy that accepts only signed images of this repository."""

from __future__ import annotations

from imagepipe.cli.verbs.signer import lookaside_url, public_key
from imagepipe.exec import exitcodes
from imagepipe.pipeline.context import Context
from imagepipe.supplychain import trust
from imagepipe.ui import output


def run(ctx: Context) -> int:
    a = ctx.args
    files = trust.write(ctx.repository.name, public_key=public_key(ctx), lookaside=lookaside_url(ctx),
                        state_dir=ctx.state_dir, install=a.signing.install)
    output.block(f"policy: {files.policy} (images of {ctx.repository.name} must be signed by {files.public_key})")
    output.block(f"signatures read from {lookaside_url(ctx)} ({files.registries_d})")
    if not a.signing.install:
        output.block(f"use: podman pull --signature-policy {files.policy} … (lookaside: copy "
                     f"{files.registries_d}/* to /etc/containers/registries.d/, or rerun with --install)")
    return exitcodes.OK
