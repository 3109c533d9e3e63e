"""ci/pipeline-job.yaml filled in for one run of the whole job in the cluster (`pipeline.py submit`): the
commit, the pipeline's image, the registry and the lookaside in place of its placeholders, the run's
labels, and the options the pipeline in the pod is given besides the file's own. Pure: tested without a
cluster."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from imagepipe.paths import ROOT
from imagepipe.pipeline import report

MANIFEST = ROOT / "ci/pipeline-job.yaml"
CONTAINER = "pipeline"  # the container that runs build/pipeline.py
BUILD_CA_DIR = "/etc/imagepipe/build-ca"  # where a --build-ca Secret is mounted in the pod


@dataclass(frozen=True)
class Submission:
    name: str  # the Job's name
    image: str  # the pipeline's image (`pipeline-image` prints it)
    git_url: str
    commit: str
    registry: str
    lookaside: str
    labels: dict[str, str]
    git_image: str | None = None  # the clone step's image, in place of the file's
    build_ca_secret: str | None = None  # a Secret holding ca.crt, mounted for --build-ca
    extra: tuple[str, ...] = ()  # more options for the pipeline in the pod
    env: tuple[tuple[str, str], ...] = ()  # more environment for the pipeline in the pod


def load(path: Path = MANIFEST) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


def _named(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [c for c in items if c.get("name") == name]
    if len(found) != 1:
        raise ValueError(f"{MANIFEST.name} must have exactly one container named {name!r}")
    return found[0]


def _set_env(container: dict[str, Any], name: str, value: str) -> None:
    env = container.setdefault("env", [])
    env[:] = [e for e in env if e.get("name") != name] + [{"name": name, "value": value}]


def job_for(manifest: dict[str, Any], s: Submission) -> dict[str, Any]:
    job = copy.deepcopy(manifest)
    job["metadata"]["name"] = s.name
    job["metadata"].setdefault("labels", {}).update(s.labels)
    template = job["spec"]["template"]
    template.setdefault("metadata", {}).setdefault("labels", {}).update(s.labels)
    pod = template["spec"]
    clone = _named(pod["initContainers"], "clone")
    _set_env(clone, "GIT_URL", s.git_url)
    _set_env(clone, "GIT_REF", s.commit)
    if s.git_image:
        clone["image"] = s.git_image
    main = _named(pod["containers"], CONTAINER)
    main["image"] = s.image
    _set_env(main, "GIT_URL", s.git_url)
    _set_env(main, report.LOG_ENV, "1")  # the pod's report and JUnit file reach `submit` through its log
    for key, value in s.env:
        _set_env(main, key, value)
    placeholders = {"REGISTRY": s.registry, "LOOKASIDE_URL": s.lookaside}
    args = [placeholders.get(a, a) for a in main["args"]]
    if s.build_ca_secret:
        main.setdefault("volumeMounts", []).append({"name": "build-ca", "mountPath": BUILD_CA_DIR, "readOnly": True})
        pod.setdefault("volumes", []).append({"name": "build-ca", "secret": {"secretName": s.build_ca_secret}})
        args += ["--build-ca", f"{BUILD_CA_DIR}/ca.crt"]
    main["args"] = [*args, *s.extra]
    return job
