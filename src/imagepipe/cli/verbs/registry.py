"""`pipeline.py registry start|stop|status`: the embedded registry and the signature server beside it."""

from __future__ import annotations

from imagepipe.errors import UsageError
from imagepipe.exec import exitcodes
from imagepipe.pipeline.context import Context
from imagepipe.registry import embedded, ports
from imagepipe.services import sigserver
from imagepipe.ui import output


def run(ctx: Context) -> int:
    a = ctx.args
    action = (a.target or ["status"])[0]
    reg = embedded.EmbeddedRegistry(ctx.state_dir, a.registry)
    sigs = sigserver.on_port(ctx.state_dir, a.sigserver_port)
    if action in ("start", "stop") and not a.embedded:
        raise UsageError(f"`registry {action}` manages the embedded registry only: drop --registry "
                         f"{a.registry} (use --embedded-port to choose its port)")
    if action == "start":
        output.block(f"registry {reg.ensure_running()} on {reg.addr} (data: {reg.dir / 'data'})")
    elif action == "stop":
        output.block("registry stopped" if reg.stop() else "registry was not running (from this state directory)")
        if sigs.stop():
            output.block("signature server stopped")
    elif action == "status":
        output.block(f"state directory {ctx.state_dir}")
        if a.embedded:
            output.block(f"registry {reg.addr}: {_serving(reg.port, ctx)} (embedded, bound to loopback only, "
                         f"data {reg.dir / 'data'})")
        else:
            output.block(f"registry {reg.addr}: {embedded.probe(reg.addr)} (named with --registry)")
        output.block(f"signatures {sigs.url}: {_serving(sigs.port, ctx)} (lighttpd, bound to loopback only, "
                     f"store {sigs.store})")
    else:
        raise UsageError(f"unknown registry action {action!r}: use start, stop or status")
    return exitcodes.OK


def _serving(port: int, ctx: Context) -> str:
    """Whether this checkout's server holds its port, and whose it is when another process does."""
    held = ports.holder(port)
    if held is None:
        return "not running"
    if held.state_dir == ctx.state_dir:
        return f"serving this state directory (pid {held.pid})"
    return f"port taken by {held.describe()}"
