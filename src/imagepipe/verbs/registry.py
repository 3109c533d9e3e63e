"""`pipeline.py registry start|stop|status`: the embedded registry and the signature server beside it."""

from __future__ import annotations

from imagepipe import exitcodes
from imagepipe.context import Context
from imagepipe.errors import UsageError
from imagepipe.services import registry, sigserver


def run(ctx: Context) -> int:
    a = ctx.args
    action = (a.target or ["status"])[0]
    reg = registry.EmbeddedRegistry(ctx.state_dir, a.registry)
    sigs = sigserver.on_port(ctx.state_dir, a.sigserver_port)
    if action in ("start", "stop") and not a.embedded:
        raise UsageError(f"`registry {action}` manages the embedded registry only: drop --registry "
                         f"{a.registry} (use --embedded-port to choose its port)")
    if action == "start":
        print(f"registry {reg.ensure_running()} on {reg.addr} (data: {reg.dir / 'data'})")
    elif action == "stop":
        print("registry stopped" if reg.stop() else "registry was not running (from this state directory)")
        if sigs.stop():
            print("signature server stopped")
    elif action == "status":
        state = registry.probe(reg.addr)
        where = " (embedded, bound to loopback only)" if a.embedded else ""
        pid = reg.pid()
        print(f"{reg.addr}: {state}{where}" + (f" (pid {pid}, data {reg.dir / 'data'})" if pid else ""))
        print(f"signatures {sigs.url}: {'serving' if sigs.pid() and sigs.answers() else 'not running'} (lighttpd, "
              f"bound to loopback only, {sigs.store})")
    else:
        raise UsageError(f"unknown registry action {action!r}: use start, stop or status")
    return exitcodes.OK
