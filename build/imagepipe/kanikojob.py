"""ci/kaniko.yaml: the one source of kaniko's flags (a local kaniko run and the cluster Job share them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from imagepipe.stages import ROOT

MANIFEST = ROOT / "ci/kaniko.yaml"


def load(path: Path = MANIFEST) -> dict[str, Any]:
    with open(path) as f:
        return dict(yaml.safe_load(f))


def executor_args(job: dict[str, Any]) -> list[str]:
    """The kaniko container's args, as the Job runs them."""
    containers = job["spec"]["template"]["spec"]["containers"]
    kaniko = next(c for c in containers if c["name"] == "kaniko")
    return [str(a) for a in kaniko["args"]]


def local_args(job: dict[str, Any], *, context: str, dockerfile: str, destination: str, cache_repo: str) -> list[str]:
    """The Job's args with only what differs locally rewritten: context, Containerfile, destination, cache."""
    rewrite = {"--context": f"dir://{context}", "--dockerfile": dockerfile, "--destination": destination,
               "--cache-repo": cache_repo}
    out = []
    for arg in executor_args(job):
        key = arg.split("=", 1)[0]
        out.append(f"{key}={rewrite[key]}" if key in rewrite else arg)
    return out
