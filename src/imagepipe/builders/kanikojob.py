"""ci/kaniko.yaml: the one source of kaniko's flags, image and security context. A local kaniko run and the
cluster Job share them; what a local run may change is named here and nowhere else."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from imagepipe.paths import ROOT

MANIFEST = ROOT / "ci/kaniko.yaml"

# The only flags a run may rewrite (a local podman run or a Job submitted by --kube-context): where the
# build reads from and where it pushes to. Every other flag is the manifest's.
REWRITABLE = ("--context", "--dockerfile", "--destination", "--cache-repo")


def load(path: Path = MANIFEST) -> dict[str, Any]:
    with open(path) as f:
        return dict(yaml.safe_load(f))


def kaniko_container(job: dict[str, Any]) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    return dict(next(c for c in containers if c["name"] == "kaniko"))


def executor_args(job: dict[str, Any]) -> list[str]:
    """The kaniko container's args, as the Job runs them."""
    return [str(a) for a in kaniko_container(job)["args"]]


def executor_env(job: dict[str, Any]) -> dict[str, str]:
    """The kaniko container's plain env values (its feature flags): a local run sets the same."""
    return {str(e["name"]): str(e["value"]) for e in kaniko_container(job).get("env") or [] if "value" in e}


def executor_image(job: dict[str, Any]) -> str:
    return str(kaniko_container(job)["image"])


def rewrite(args: list[str], values: dict[str, str]) -> list[str]:
    """args with the REWRITABLE flags set to `values`; asking for any other flag is a programming error."""
    unknown = set(values) - set(REWRITABLE)
    if unknown:
        raise ValueError(f"not rewritable: {sorted(unknown)} (only {', '.join(REWRITABLE)})")
    out = []
    for arg in args:
        key = arg.split("=", 1)[0]
        out.append(f"{key}={values[key]}" if key in values else arg)
    return out


def loopback_registry_flags(registry: str) -> list[str]:
    """Local-only flags for a plain-HTTP registry on loopback: the base image comes from it as a mirror of
    docker.io (no internet registry is reachable), and pushes and pulls speak HTTP."""
    return [f"--registry-mirror={registry}", "--insecure", "--insecure-pull", "--skip-tls-verify-pull"]


def local_args(job: dict[str, Any], *, context: str, dockerfile: str, destination: str, cache_repo: str,
               loopback_registry: str | None = None) -> list[str]:
    """The Job's args for a local run: the rewritable flags set, loopback flags appended when the registry
    is a local plain-HTTP one."""
    args = rewrite(executor_args(job), {"--context": f"dir://{context}", "--dockerfile": dockerfile,
                                        "--destination": destination, "--cache-repo": cache_repo})
    return args + (loopback_registry_flags(loopback_registry) if loopback_registry else [])


@dataclass(frozen=True)
class Security:
    """The kaniko container's securityContext, as podman can express it."""
    user: str | None
    cap_add: tuple[str, ...]
    drop_all: bool
    no_new_privileges: bool
    privileged: bool


def security(job: dict[str, Any]) -> Security:
    ctx = dict(kaniko_container(job).get("securityContext") or {})
    caps = dict(ctx.get("capabilities") or {})
    user = ctx.get("runAsUser")
    return Security(user=None if user is None else str(user), cap_add=tuple(caps.get("add") or ()),
                    drop_all="ALL" in (caps.get("drop") or ()),
                    no_new_privileges=ctx.get("allowPrivilegeEscalation") is False,
                    privileged=bool(ctx.get("privileged")))


CA_MOUNT = "/run/host-ca.crt"  # where the Containerfile's RUN finds an extra CA for pip (as in the local run)
PIP_CACHE_MOUNT = "/run/pip-cache"  # where it keeps its wheelhouses (kaniko snapshots no mount point)


@dataclass(frozen=True)
class ClusterSettings:
    """What a cluster run may set in the manifest, each a named rewrite (README, "In a cluster")."""
    name: str
    labels: dict[str, str]
    git_url: str
    commit: str
    destination: str
    cache_repo: str
    registry_secret: str  # the kubernetes.io/dockerconfigjson Secret mounted as kaniko's docker config
    executor: str | None = None  # --kaniko-image
    git_image: str | None = None  # --git-image
    mirror: str | None = None  # --registry-mirror: kaniko pulls docker.io images there, and only there
    insecure: tuple[str, ...] = ()  # --insecure-registry: plain-HTTP registries kaniko may push to and pull from
    ca_secret: str | None = None  # --build-ca: a Secret holding ca.crt, mounted at CA_MOUNT
    deadline: int | None = None  # --job-deadline: activeDeadlineSeconds
    # --platform: `arch` pins the pod to nodes of that architecture (kubernetes.io/arch), `custom_platform` has
    # kaniko build another architecture under the node's emulation (a cluster without such nodes)
    node_arch: str | None = None
    custom_platform: str | None = None
    pip_cache: str | None = None  # --pip-cache: a PersistentVolumeClaim mounted at PIP_CACHE_MOUNT


def cluster_args(job: dict[str, Any], s: ClusterSettings) -> list[str]:
    args = rewrite(executor_args(job), {"--destination": s.destination, "--cache-repo": s.cache_repo})
    if s.mirror:
        args += [f"--registry-mirror={s.mirror}", "--skip-default-registry-fallback"]
    if s.custom_platform:
        args.append(f"--custom-platform={s.custom_platform}")
    return args + [f"--insecure-registry={host}" for host in s.insecure]


def job_for(job: dict[str, Any], s: ClusterSettings) -> dict[str, Any]:
    """The manifest as submitted to a cluster, with the named rewrites only: a unique name and the run's
    labels (on the Job and its pod), the kaniko args above, the commit to fetch, the images, the Secret,
    the build CA, the pip cache and the deadline. Everything else is ci/kaniko.yaml's."""
    out = copy.deepcopy(job)
    out["metadata"]["name"] = s.name
    out["metadata"].setdefault("labels", {}).update(s.labels)
    out["spec"]["template"]["metadata"].setdefault("labels", {}).update(s.labels)
    if s.deadline is not None:
        out["spec"]["activeDeadlineSeconds"] = s.deadline
    pod = out["spec"]["template"]["spec"]
    kaniko = next(c for c in pod["containers"] if c["name"] == "kaniko")
    kaniko["args"] = cluster_args(job, s)
    if s.executor:
        kaniko["image"] = s.executor
    for init in pod.get("initContainers") or []:
        if s.git_image:
            init["image"] = s.git_image
        for env in init.get("env") or []:
            if env["name"] == "GIT_URL":
                env["value"] = s.git_url
            elif env["name"] == "GIT_REF":
                env["value"] = s.commit
    for volume in pod["volumes"]:
        if "secret" in volume and volume["name"] == "registry-credentials":
            volume["secret"]["secretName"] = s.registry_secret
    if s.node_arch:
        pod.setdefault("nodeSelector", {})["kubernetes.io/arch"] = s.node_arch
    if s.ca_secret:
        pod["volumes"].append({"name": "build-ca", "secret": {"secretName": s.ca_secret}})
        kaniko["volumeMounts"].append({"name": "build-ca", "mountPath": CA_MOUNT, "subPath": "ca.crt",
                                       "readOnly": True})
    if s.pip_cache:
        pod["volumes"].append({"name": "pip-cache", "persistentVolumeClaim": {"claimName": s.pip_cache}})
        kaniko["volumeMounts"].append({"name": "pip-cache", "mountPath": PIP_CACHE_MOUNT})
    return out


def images(job: dict[str, Any]) -> dict[str, str]:
    """Every image the Job's pod uses, by container name."""
    pod = job["spec"]["template"]["spec"]
    return {c["name"]: str(c["image"]) for c in [*(pod.get("initContainers") or []), *pod["containers"]]}
