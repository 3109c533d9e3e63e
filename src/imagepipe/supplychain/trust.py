"""`pipeline.py trust [--install]`: the containers policy under which podman/skopeo accept images of this
repository only when signed by the pipeline's key, and where they find the signatures (registries.d).

Without --install the files go to <state>/trust/ (pass them with `--signature-policy` and, for skopeo,
`--registries.d`); with --install they are merged into /etc/containers/policy.json (other entries kept) and
/etc/containers/registries.d/, which podman reads for every pull.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagepipe.host.files import write_atomic

SYSTEM_POLICY = Path("/etc/containers/policy.json")
SYSTEM_REGISTRIES_D = Path("/etc/containers/registries.d")
SYSTEM_KEYS = Path("/etc/containers/imagepipe")
DEFAULT_POLICY: dict[str, Any] = {"default": [{"type": "insecureAcceptAnything"}]}


@dataclass(frozen=True)
class TrustFiles:
    policy: Path
    registries_d: Path
    public_key: Path


def requirement(public_key: Path) -> list[dict[str, str]]:
    return [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(public_key)}]


def merged_policy(existing: dict[str, Any], scope: str, public_key: Path) -> dict[str, Any]:
    """`existing` with `scope` requiring the key; everything else as it was."""
    policy = json.loads(json.dumps(existing)) if existing else dict(DEFAULT_POLICY)
    policy.setdefault("default", DEFAULT_POLICY["default"])
    policy.setdefault("transports", {}).setdefault("docker", {})[scope] = requirement(public_key)
    return policy


def lookaside_yaml(scope: str, lookaside: str) -> str:
    return f"docker:\n  {scope}:\n    lookaside: {lookaside}\n"


def _name(scope: str) -> str:
    return "imagepipe-" + re.sub(r"[^A-Za-z0-9]+", "-", scope).strip("-") + ".yaml"


def write(scope: str, *, public_key: Path, lookaside: str, state_dir: Path, install: bool) -> TrustFiles:
    if install:
        SYSTEM_KEYS.mkdir(parents=True, exist_ok=True)
        key = SYSTEM_KEYS / public_key.name
        shutil.copyfile(public_key, key)
        existing = json.loads(SYSTEM_POLICY.read_text()) if SYSTEM_POLICY.exists() else {}
        policy, registries_d = SYSTEM_POLICY, SYSTEM_REGISTRIES_D
    else:
        out = state_dir / "trust"
        out.mkdir(parents=True, exist_ok=True)
        key = out / public_key.name
        if public_key.resolve() != key.resolve():
            shutil.copyfile(public_key, key)
        existing, policy, registries_d = {}, out / "policy.json", out / "registries.d"
    registries_d.mkdir(parents=True, exist_ok=True)
    write_atomic(policy, json.dumps(merged_policy(existing, scope, key), indent=2) + "\n")
    (registries_d / _name(scope)).write_text(lookaside_yaml(scope, lookaside))
    return TrustFiles(policy, registries_d, key)


def uninstall(scope: str) -> None:
    """Remove what --install added for `scope` (the tests restore the host this way)."""
    if SYSTEM_POLICY.exists():
        policy = json.loads(SYSTEM_POLICY.read_text())
        policy.get("transports", {}).get("docker", {}).pop(scope, None)
        SYSTEM_POLICY.write_text(json.dumps(policy, indent=2) + "\n")
    (SYSTEM_REGISTRIES_D / _name(scope)).unlink(missing_ok=True)
