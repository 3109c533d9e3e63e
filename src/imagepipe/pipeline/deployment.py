"""The Deployment a team runs the verified digest with. Kubernetes ignores HEALTHCHECK, so its startup,
readiness and liveness probes are derived from it here (the same command, its interval, timeout, start
period and retries), with the securityContext the image supports (its numeric user, a read-only root, no
capabilities). Pure: the image's config and user in, the manifest out. `pipeline.py deployment REF@sha256:…`
prints exactly this, and the cluster path applies exactly this to prove the digest becomes Ready.

How HEALTHCHECK maps (docs: "Deploying to Kubernetes"):
- startup: probed every second (Docker's --start-interval) until it passes; failures are allowed for the
  start period, then `retries` more, after which the kubelet kills the container;
- liveness: every `interval`, `retries` failures in a row restart it (Docker's `unhealthy`);
- readiness: every `interval`, one failure takes the pod out of its Service until the check passes again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from imagepipe.errors import UsageError

NS = 1e9  # the image config keeps durations in nanoseconds
DOCKER_DEFAULTS = {"Interval": 30 * NS, "Timeout": 30 * NS, "StartPeriod": 0, "Retries": 3}
CONTAINER = "backend"
ENV_FROM = "todo-backend-env"  # the Secret with the contract's environment (DATABASE_URL, BETTER_AUTH_SECRET, …)


@dataclass(frozen=True)
class Health:
    command: list[str]
    interval: float
    timeout: float
    start_period: float
    retries: int


def health_of(config: dict[str, Any]) -> Health:
    """The image's HEALTHCHECK (config.Healthcheck), with Docker's defaults where a field is unset."""
    hc = config.get("Healthcheck") or {}
    test = list(hc.get("Test") or [])
    if not test or test[0] == "NONE":
        raise UsageError("the image has no HEALTHCHECK: there is nothing to derive Kubernetes probes from")
    command = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test

    def field(name: str) -> float:
        return float(hc.get(name) or DOCKER_DEFAULTS[name])

    return Health(command, field("Interval") / NS, field("Timeout") / NS, field("StartPeriod") / NS,
                  int(field("Retries")))


def probes(h: Health) -> dict[str, dict[str, Any]]:
    check = {"exec": {"command": h.command}, "timeoutSeconds": max(1, math.ceil(h.timeout))}
    interval = max(1, math.ceil(h.interval))
    return {
        "startupProbe": {**check, "periodSeconds": 1, "failureThreshold": math.ceil(h.start_period) + h.retries},
        "readinessProbe": {**check, "periodSeconds": interval, "failureThreshold": 1},
        "livenessProbe": {**check, "periodSeconds": interval, "failureThreshold": h.retries},
    }


def container_port(config: dict[str, Any]) -> int:
    exposed = sorted(config.get("ExposedPorts") or {})
    tcp = [int(p.split("/")[0]) for p in exposed if p.endswith("/tcp")]
    if not tcp:
        raise UsageError("the image exposes no TCP port: the Deployment would have nothing to serve")
    return tcp[0]


def manifest(image: str, config: dict[str, Any], *, uid: int, gid: int, name: str = "todo-backend",
             namespace: str | None = None, env_secret: str = ENV_FROM, labels: dict[str, str] | None = None,
             replicas: int = 1) -> dict[str, Any]:
    """A List of the Deployment and its Service for `image` (REGISTRY/REPO@sha256:…)."""
    if "@sha256:" not in image:
        raise UsageError(f"{image}: give the verified digest (REGISTRY/REPO@sha256:…), not a tag")
    if uid == 0:
        raise UsageError(f"{image} runs as root: a non-root Deployment cannot run it (contract FR-004)")
    port = container_port(config)
    meta: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/name": name, **(labels or {})}}
    if namespace:
        meta["namespace"] = namespace
    container = {
        "name": CONTAINER, "image": image, "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port}],
        "envFrom": [{"secretRef": {"name": env_secret}}],
        **probes(health_of(config)),
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        # the service writes nothing but temporary files (verify runs it the same way: read-only, tmpfs /tmp)
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - the container's own /tmp
    }
    pod = {
        "automountServiceAccountToken": False,
        # uvicorn lets in-flight requests finish for 8 s on SIGTERM (the image's CMD)
        "terminationGracePeriodSeconds": 10,
        "securityContext": {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": gid,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
    }
    selector = {"app.kubernetes.io/name": name}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                  "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                           "template": {"metadata": {"labels": {**meta["labels"]}}, "spec": pod}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": meta,
               "spec": {"selector": selector, "ports": [{"name": "http", "port": port, "targetPort": "http"}]}}
    return {"apiVersion": "v1", "kind": "List", "items": [deployment, service]}


def user_ids(passwd: str, user: str) -> tuple[int, int]:
    """USER as numbers (runAsNonRoot cannot check a name): a number as it is, a name through /etc/passwd."""
    name, _, group = user.partition(":")
    if name.isdigit():
        return int(name), int(group) if group.isdigit() else int(name)
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == name:
            return int(fields[2]), int(group) if group.isdigit() else int(fields[3])
    raise UsageError(f"the image's USER {user!r} is not in its /etc/passwd: set USER to a UID")
