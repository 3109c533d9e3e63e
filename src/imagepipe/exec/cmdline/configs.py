"""The config files of the services the pipeline starts: Debian's docker-registry and lighttpd (the
signature server). Text builders, pure like the argv builders."""

from __future__ import annotations

from pathlib import Path

__all__ = ["lighttpd_config", "registry_config"]


def registry_config(*, addr: str, root: Path) -> str:
    """Config of Debian's docker-registry (distribution 2.8) for the embedded registry."""
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {addr}\n"
    )


def lighttpd_config(*, addr: str, root: Path, pidfile: Path) -> str:
    """Debian's lighttpd serving the signature lookaside store read-only (static files, no listing)."""
    host, _, port = addr.rpartition(":")
    return (
        f'server.document-root = "{root}"\n'
        f'server.bind = "{host}"\n'
        f"server.port = {port}\n"
        f'server.pid-file = "{pidfile}"\n'
        'server.modules = ( "mod_staticfile" )\n'
        'mimetype.assign = ( "" => "application/octet-stream" )\n'
        'dir-listing.activate = "disable"\n'
        # no stat cache: a replaced signature file is served at once, never a stale copy
        'server.stat-cache-engine = "disable"\n'
    )
