"""Make a built image's digest depend on its content only.

buildah 1.28 writes a random `container` id and `Hostname`, and the ids of its cache images, into the
docker-format config, so two clean builds of one commit have identical layers (fixed `--timestamp`,
hash-based .pyc) but different digests. This rewrites the config without them: copy the image to a `dir:`
layout, edit the config blob, copy back.
The layers are untouched, so the copy back stores nothing new.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from imagepipe.exec import cmdline, runner

# Per-build values buildah records: the build container's id and hostname, and the ids of its cache images
# (`parent`, and history comments "FROM <id>"). None of them describes the image's content.
VOLATILE_KEYS = ("container", "parent")
VOLATILE_CONFIG_KEYS = ("Hostname",)


def normalise_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config with the per-build random fields removed (pure; unit-tested)."""
    out = {k: v for k, v in config.items() if k not in VOLATILE_KEYS}
    for section in ("config", "container_config"):
        if isinstance(out.get(section), dict):
            out[section] = {k: ("" if k in VOLATILE_CONFIG_KEYS else v) for k, v in out[section].items()}
    if isinstance(out.get("history"), list):
        out["history"] = [
            {k: v for k, v in entry.items() if not (k == "comment" and str(v).startswith("FROM "))}
            for entry in out["history"]
        ]
    return out


def rewrite(image: str, *, work_dir: Path) -> None:
    """Replace `image` in local storage by the same image with a normalised config."""
    tmp = Path(tempfile.mkdtemp(prefix="reproducible-", dir=work_dir))
    try:
        layout = tmp / "image"
        runner.run(cmdline.skopeo_to_dir(f"containers-storage:{image}", layout), stage="build", timeout=600,
                   what="exporting the image for a reproducible config")
        manifest = json.loads((layout / "manifest.json").read_text())
        old_digest = manifest["config"]["digest"]
        old_blob = layout / old_digest.split(":", 1)[1]
        config = normalise_config(json.loads(old_blob.read_bytes()))
        data = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
        digest = hashlib.sha256(data).hexdigest()
        old_blob.unlink()
        (layout / digest).write_bytes(data)
        manifest["config"]["digest"] = f"sha256:{digest}"
        manifest["config"]["size"] = len(data)
        (layout / "manifest.json").write_text(json.dumps(manifest, separators=(",", ":")))
        runner.run(cmdline.skopeo_dir_to_storage(layout, image), stage="build", timeout=600,
                   what="storing the image with a reproducible config")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
