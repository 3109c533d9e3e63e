"""The Better Auth test server's set-up: its npm packages keyed by our lock, and node's absence or age
named with the fix (the MCP OAuth tests never skip, so the set-up fails instead)."""

from __future__ import annotations

import pytest

from imagepipe.cluster.binaries import CACHE
from imagepipe.errors import PipelineError
from imagepipe.exec import runner
from imagepipe.services import betterauth


def test_the_cache_is_keyed_by_the_lock_and_outside_the_clone(tmp_path, monkeypatch):
    where = betterauth.cache_dir()
    assert where.parent.name == "betterauth" and not where.is_relative_to(betterauth.ROOT)
    # a lock and package.json of known bytes: the key is the first 12 hex digits of sha256 over the lock, then
    # package.json (the literal is `sha256sum` of those bytes)
    (tmp_path / "package-lock.json").write_text('{"lockfileVersion": 3}\n')
    (tmp_path / "package.json").write_text('{"name": "betterauth-test-server"}\n')
    monkeypatch.setattr(betterauth, "SOURCE", tmp_path)
    assert betterauth.cache_dir() == CACHE / "betterauth" / "7d26c604b751"


def test_no_node_is_one_line_naming_the_fix(monkeypatch):
    monkeypatch.setattr(runner, "installed", lambda name: None)
    with pytest.raises(PipelineError) as e:
        betterauth.node()
    assert e.value.message == ("node is not installed: install Node.js 20 or later (the Better Auth test server "
                               "needs it)")


def test_an_old_node_is_refused(monkeypatch, tmp_path):
    old = tmp_path / "node"
    old.write_text("#!/bin/sh\necho v18.19.0\n")
    old.chmod(0o755)
    monkeypatch.setattr(runner, "installed", lambda name: str(old))
    with pytest.raises(PipelineError) as e:
        betterauth.node()
    assert e.value.message == "node v18.19.0 is too old for the Better Auth test server: install Node.js 20 or later"
