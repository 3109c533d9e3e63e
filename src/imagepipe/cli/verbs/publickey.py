"""`pipeline.py public-key`: the cosign public key promote signs and attests with, printed (PEM), for a
cluster's admission policy: --cosign-key's public half, or the pipeline's own (generated once, here, when
the state directory has none yet)."""

from __future__ import annotations

from imagepipe.exec import exitcodes
from imagepipe.pipeline.context import Context
from imagepipe.supplychain import cosigning
from imagepipe.ui import output


def run(ctx: Context) -> int:
    key = cosigning.key_for(ctx.args.signing.cosign_key, ctx.state_dir)
    output.block(key.public.read_text().rstrip("\n"))
    return exitcodes.OK
