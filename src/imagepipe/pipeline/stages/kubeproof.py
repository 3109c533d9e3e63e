"""With --kube-context, after verify: the verified digest run as the Deployment `pipeline.py deployment`
prints (imagepipe.pipeline.deployment: probes derived from its HEALTHCHECK, its user, a read-only root), in the run's
namespace. It must become Ready; a container its probes stop (restarted, or never Ready in time) fails the
run with one line, before promote. The Deployment, its Service and its Secret are deleted either way."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import time
from typing import Any

from imagepipe.builders import kubejob
from imagepipe.builders.kubewatch import PULL_ERRORS
from imagepipe.checks.types import ISSUER
from imagepipe.errors import PipelineError
from imagepipe.exec import cancel
from imagepipe.exec.retry import wait_until
from imagepipe.image.refs import ImageRef
from imagepipe.pipeline import deployment
from imagepipe.pipeline.context import Context
from imagepipe.registry.access import Access
from imagepipe.registry.oci import Registry
from imagepipe.ui import output

READY_SECONDS = 120.0  # scheduling, the node's pull and the start-up; the probes decide long before


def image_facts(access: Access, image: ImageRef) -> tuple[dict[str, Any], tuple[int, int]]:
    """The image's config and its USER as numbers, read from the registry (no container, no mount)."""
    reg = Registry(access, image.repository, stage="verify")
    fetched = reg.get_manifest(image.digest or "")
    if fetched is None:
        raise PipelineError(f"{image} is not in its registry", stage="verify")
    manifest = json.loads(fetched[0])
    config = json.loads(reg.get_blob(manifest["config"]["digest"])).get("config") or {}
    user = str(config.get("User") or "0")
    passwd = "" if user.split(":")[0].isdigit() else layer_file(reg, manifest["layers"], "etc/passwd")
    return config, deployment.user_ids(passwd, user)


def layer_file(reg: Registry, layers: list[dict[str, Any]], path: str) -> str:
    """A file as the image has it: the last layer that holds (or deletes) it wins."""
    parent, _, base = path.rpartition("/")
    whiteout = f"{parent}/.wh.{base}" if parent else f".wh.{base}"
    for layer in reversed(layers):
        with tarfile.open(fileobj=io.BytesIO(reg.get_blob(layer["digest"])), mode="r:*") as tar:
            for member in tar:
                name = member.name.lstrip("./")
                if name == whiteout:
                    return ""
                if name == path and member.isfile():
                    f = tar.extractfile(member)
                    return f.read().decode() if f else ""
    return ""


def env_secret(name: str, labels: dict[str, str], *, service: str) -> dict[str, Any]:
    """What the contract's environment table requires, for this proof only: /health never touches the
    database, so an address where nothing listens is enough (the app keeps retrying in the background)."""
    data = {"DATABASE_URL": "postgresql://proof@127.0.0.1:1/proof", "BETTER_AUTH_SECRET": secrets.token_urlsafe(32),
            "OPENAI_API_KEY": "sk-proof-" + secrets.token_urlsafe(16),
            # the Service's in-cluster address is the one a client of this proof would use
            "MCP_RESOURCE_URL": f"http://{service}/mcp", "MCP_AUTHORIZATION_SERVER": ISSUER}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name, "labels": labels},
            "stringData": data}


def prove(ctx: Context, image: ImageRef) -> dict[str, Any]:
    a = ctx.args
    assert a.kube.context is not None, "the stage table runs the proof for --kube-context runs only"
    config, (uid, gid) = image_facts(ctx.access(image.registry, stage="verify"), image)
    name = f"todo-backend-proof-{ctx.run_id}"
    listed = deployment.manifest(str(image), config, uid=uid, gid=gid, name=name, env_secret=f"{name}-env",
                                 labels=ctx.labels)
    dep, svc = listed["items"]
    cluster = kubejob.Cluster(a.kube.context, a.kube.namespace)
    apps = cluster.apps()
    run = cancel.current()
    entry = json.dumps({"context": cluster.context, "namespace": cluster.namespace, "job": None,
                        "secrets": [f"{name}-env"], "deployments": [name], "services": [name]})
    if run is not None:  # a SIGKILLed run's Deployment is deleted by the next run
        run.record("kube", entry)
    t0 = time.monotonic()
    try:
        ns = cluster.namespace
        cluster.call("create secrets", cluster.core.create_namespaced_secret, ns,
                     kubejob.owned(env_secret(f"{name}-env", ctx.labels, service=name), ns))
        cluster.call("create deployments", apps.create_namespaced_deployment, ns, kubejob.owned(dep, ns))
        cluster.call("create services", cluster.core.create_namespaced_service, ns, kubejob.owned(svc, ns))
        pod = wait_ready(cluster, name, time.monotonic() + READY_SECONDS)
        seconds = time.monotonic() - t0
    finally:
        kubejob.delete_deployment(cluster, name)
        kubejob.delete(cluster, None, [f"{name}-env"])
        if run is not None:
            run.forget("kube", entry)
    probes = {k: {f: v for f, v in p.items() if f != "exec"} for k, p in deployment.probes(
        deployment.health_of(config)).items()}
    output.say(f"the Deployment {name} became Ready in {seconds:.1f} s (pod {pod} as uid {uid}, read-only root, "
               "no capabilities; probes from the image's HEALTHCHECK)")
    return {"deployment": name, "namespace": cluster.namespace, "pod": pod, "ready_seconds": round(seconds, 1),
            "run_as": uid, "probes": probes}


def wait_ready(cluster: kubejob.Cluster, name: str, deadline: float) -> str:
    """The pod's name once its container is Ready; one line when the probes stopped it or it never came."""
    seen: dict[str, str] = {}

    def ready() -> str | None:
        pods = cluster.call("list pods", cluster.core.list_namespaced_pod, cluster.namespace,
                            label_selector=f"app.kubernetes.io/name={name}").items
        for pod in pods:
            seen["pod"] = pod.metadata.name
            for status in pod.status.container_statuses or []:
                waiting = status.state.waiting
                if waiting is not None and waiting.reason in PULL_ERRORS:
                    raise PipelineError(f"the cluster cannot pull the verified digest {status.image} "
                                        f"({waiting.reason}): make it pullable from the nodes", stage="verify")
                if status.restart_count > 0:
                    raise stopped(cluster, name, pod.metadata.name, "restarted it")
                if status.ready:
                    return str(pod.metadata.name)
        return None

    found = wait_until(ready, timeout=max(1.0, deadline - time.monotonic()), interval=0.5)
    if found is None:
        raise stopped(cluster, name, seen.get("pod", "?"), f"kept it from Ready for {READY_SECONDS:g} s")
    return found


def stopped(cluster: kubejob.Cluster, name: str, pod: str, what: str) -> PipelineError:
    events = cluster.call("list events", cluster.core.list_namespaced_event, cluster.namespace,
                          field_selector=f"involvedObject.name={pod}").items
    probe = [e.message for e in events if e.reason == "Unhealthy" and e.message]
    why = f": {probe[-1].strip()[:200]}" if probe else ""
    return PipelineError(f"the verified digest ran as the Deployment {name} in {cluster.namespace}, and its probes "
                         f"(from the image's HEALTHCHECK) {what}{why}; nothing was promoted", stage="verify")
