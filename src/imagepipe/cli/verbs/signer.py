"""Where `trust` and `attest verify` find the signer's public key and the lookaside URL."""

from __future__ import annotations

from pathlib import Path

from imagepipe.errors import UsageError
from imagepipe.pipeline.context import Context
from imagepipe.services import sigserver


def public_key(ctx: Context) -> Path:
    key = ctx.args.signing.public_key or ctx.state_dir / "signing" / "pipeline-key.pub"
    if not key.is_file():
        raise UsageError(f"no public key at {key}: run the pipeline once (it creates the signing key) or pass "
                         "--public-key PATH")
    return Path(key)


def lookaside_url(ctx: Context) -> str:
    a = ctx.args
    return sigserver.lookaside_url(a.signing.lookaside, sigserver.on_port(ctx.state_dir, a.sigserver_port))
