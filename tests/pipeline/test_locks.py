"""Hashes on every dependency: the image's requirements.txt and the pipeline's lock are generated (pip-compile
--generate-hashes) from their sources, and stay in step with them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s\\;]+)", re.M)


def pins(text: str) -> dict[str, str]:
    return {m.group(1).lower().replace("_", "-"): m.group(2) for m in PIN.finditer(text)}


def blocks(text: str) -> list[str]:
    """One requirement with its hash lines per block."""
    return [b for b in re.split(r"\n(?=[A-Za-z0-9])", text) if PIN.match(b)]


def test_every_locked_requirement_has_a_hash():
    for path in (ROOT / "backend/requirements.txt", ROOT / "build/requirements.lock"):
        text = path.read_text()
        assert "pip-compile" in text and "--generate-hashes" in text, path
        missing = [b.split()[0] for b in blocks(text) if "--hash=sha256:" not in b]
        assert not missing, f"{path.name}: no hash for {missing}"


def test_locks_follow_their_sources():
    backend = pins((ROOT / "backend/requirements.txt").read_text())
    for name, version in pins((ROOT / "backend/requirements.in").read_text()).items():
        assert backend.get(name) == version, f"requirements.txt is stale for {name}: rerun pip-compile"
    with open(ROOT / "pyproject.toml", "rb") as f:
        wanted = pins("\n".join(tomllib.load(f)["project"]["dependencies"]))
    lock = pins((ROOT / "build/requirements.lock").read_text())
    for name, version in wanted.items():
        assert lock.get(name) == version, f"build/requirements.lock is stale for {name}: rerun pip-compile"
    shared = set(lock) & set(backend)
    assert shared and all(lock[n] == backend[n] for n in shared), "one version per package across both locks"
