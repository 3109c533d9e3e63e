"""cosign built from ci/sigstore: the module pins cosign v2, and the per-machine cache is keyed by what
builds it (a changed go.mod or go.sum is a rebuild)."""

from __future__ import annotations

import shutil

from imagepipe.services import sigstore


def test_the_module_pins_cosign_v2_and_builds_its_command():
    assert sigstore.version() == "v2.6.5"
    assert f'_ "{sigstore.COMMAND}"' in (sigstore.MODULE / "tools.go").read_text()
    assert "replace" not in (sigstore.MODULE / "go.mod").read_text(), "cosign v2.6.5's go.mod has none to repeat"


def test_the_cache_is_keyed_by_version_and_by_go_mod_and_go_sum(tmp_path, monkeypatch):
    module = tmp_path / "sigstore"
    shutil.copytree(sigstore.MODULE, module)
    monkeypatch.setattr(sigstore, "MODULE", module)
    monkeypatch.setattr(sigstore, "CACHE", tmp_path / "cache")
    first = sigstore.cache_dir()
    assert first.parent == tmp_path / "cache/sigstore" and first.name.startswith("v2.6.5-")
    assert sigstore.cached() is None
    (first / ".complete").parent.mkdir(parents=True)
    (first / ".complete").write_text("v2.6.5\n")
    assert sigstore.cached() is not None and sigstore.cosign() == first / "cosign"
    for name in ("go.sum", "go.mod"):
        (module / name).write_text((module / name).read_text() + "\n")
        assert sigstore.cache_dir() != first, f"a changed {name} is a rebuild"
