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


def cosign_public_key(ctx: Context) -> Path | None:
    """--cosign-public-key (options.check refused a missing file), else the pipeline's own where this state
    directory has made one, else None: a consumer that was given no cosign key checks the GPG signatures only."""
    from imagepipe.supplychain import cosigning

    given = ctx.args.signing.cosign_public_key
    own = cosigning.key_dir(ctx.state_dir) / "cosign.pub"
    return given or (own if own.is_file() else None)


def lookaside_url(ctx: Context) -> str:
    a = ctx.args
    return sigserver.lookaside_url(a.signing.lookaside, sigserver.on_port(ctx.state_dir, a.sigserver_port))
