"""The Better Auth server of the MCP OAuth tests: tests/betterauth's package.json and package-lock.json (ours,
every package pinned with its integrity hash), installed by `npm ci` into a cache outside the clone, keyed by
the lock, so a machine installs it once."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from imagepipe.cluster.binaries import CACHE
from imagepipe.errors import PipelineError
from imagepipe.exec import runner
from imagepipe.paths import ROOT
from imagepipe.ui import output

SOURCE = ROOT / "tests/betterauth"
NODE_MAJOR = 20  # better-auth 1.7 and jose 6


def cache_dir() -> Path:
    lock = (SOURCE / "package-lock.json").read_bytes() + (SOURCE / "package.json").read_bytes()
    return CACHE / "betterauth" / hashlib.sha256(lock).hexdigest()[:12]


def node() -> str:
    """node, new enough for Better Auth; else the cause and the fix."""
    found = runner.installed("node")
    if not found:
        raise PipelineError(f"node is not installed: install Node.js {NODE_MAJOR} or later (the Better Auth test "
                            "server needs it)", stage="test")
    version = runner.run([found, "--version"], stage="test").stdout.strip()
    major = re.match(r"v(\d+)\.", version)
    if not major or int(major.group(1)) < NODE_MAJOR:
        raise PipelineError(f"node {version} is too old for the Better Auth test server: install Node.js "
                            f"{NODE_MAJOR} or later", stage="test")
    return found


def ensure() -> Path:
    """The installed packages' directory (holding node_modules)."""
    target = cache_dir()
    if (target / ".complete").exists():
        return target
    node()
    npm = runner.installed("npm")
    if not npm:
        raise PipelineError("npm is not installed: install npm (the Better Auth test server's packages come "
                            "from the npm registry)", stage="test")
    output.stage(f"==> test: installing the Better Auth test server's npm packages (once; {target})")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(SOURCE / name, target / name)
    runner.run([npm, "ci", "--prefix", str(target), "--no-audit", "--no-fund", "--ignore-scripts"], stage="test",
               what="npm ci (the Better Auth test server)", timeout=900)
    (target / ".complete").touch()
    return target
