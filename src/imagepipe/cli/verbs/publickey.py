"""`pipeline.py public-key [IMAGE-GLOB]`: the cosign public key promote signs and attests with, printed (PEM),
for a cluster's admission policy: --cosign-key's public half, or the pipeline's own (generated once, here,
when the state directory has none yet). With an image glob, ci/admission-policy.yaml filled with that key and
glob instead (imagepipe.supplychain.admissionpolicy), so that `… public-key 'REGISTRY/REPO**' | kubectl apply
-f -` is the whole policy."""

from __future__ import annotations

import sys

from imagepipe.errors import UsageError
from imagepipe.exec import exitcodes
from imagepipe.pipeline.context import Context
from imagepipe.supplychain import admissionpolicy, cosigning
from imagepipe.ui import output


def run(ctx: Context) -> int:
    if len(ctx.args.target) > 1:
        raise UsageError("public-key takes at most one image glob: python build/pipeline.py public-key "
                         "'REGISTRY/REPO**'")
    key = cosigning.key_for(ctx.args.signing.cosign_key, ctx.state_dir)
    pem = key.public.read_text()
    if not ctx.args.target:
        output.block(pem.rstrip("\n"))
        return exitcodes.OK
    try:
        policy = admissionpolicy.render(pem, ctx.args.target[0])
    except ValueError as e:
        raise UsageError(str(e)) from None
    sys.stdout.write(policy)  # the policies alone on stdout, for `| kubectl apply -f -`
    return exitcodes.OK
