"""`--kube-context`: ci/kaniko.yaml's Job in a real cluster, through the official Kubernetes client.

The run's Secrets (registry credentials, the build CA) are created first, then the Job; the kaniko log is
followed, and the digest read from the kaniko container's termination message (its --digest-file). Every
failure (an image the nodes cannot pull, a commit the clone cannot fetch, a failed build, the deadline, a
refused request) ends in one line naming the cause and the fix, with the Job, its pods and the run's Secrets
deleted. A successful Job stays Complete for the manifest's ttlSecondsAfterFinished (its log is read there);
its Secrets are deleted at once. The Job, its pod and the Secrets carry the run's label, and the run's marker
names them, so a killed run's leftovers are deleted by the next run.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imagepipe import cancel
from imagepipe.errors import PipelineError
from imagepipe.retry import wait_until

log = logging.getLogger("imagepipe.kube")

POLL_SECONDS = 1.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PULL_ERRORS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")


@dataclass
class JobResult:
    digest: str
    job: str
    pod: str = ""
    node: str = ""
    images: dict[str, str] = field(default_factory=dict)  # container -> the image id the node pulled
    phases: dict[str, float] = field(default_factory=dict)  # seconds: scheduled, cloned, built, total

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job, "pod": self.pod, "node": self.node, "images": self.images,
                "phases": {k: round(v, 1) for k, v in self.phases.items()}}


class Cluster:
    """One context and namespace; every API error becomes one line naming the cause and the fix."""

    def __init__(self, context: str, namespace: str) -> None:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        self.context, self.namespace = context, namespace
        try:
            # KUBECONFIG read now, not when the client was imported (it may list several files)
            api = config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"), context=context)
        except (ConfigException, OSError) as e:
            raise PipelineError(f"cannot use Kubernetes context {context!r}: {e} (check `kubectl config "
                                "get-contexts` or KUBECONFIG)", stage="build") from None
        self.server = api.configuration.host
        self.batch, self.core = client.BatchV1Api(api), client.CoreV1Api(api)

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        kw.setdefault("_request_timeout", 30)
        try:
            return fn(*args, **kw)
        except ApiException as e:
            raise self.explain(e, what) from None
        except HTTPError as e:
            raise PipelineError(f"the cluster of context {self.context} cannot be reached at {self.server} "
                                f"({type(e).__name__}): check that it is up and that the context is right",
                                stage="build") from None

    def explain(self, e: Any, what: str) -> PipelineError:
        message = _message(e)
        if e.status == 403:
            return PipelineError(f"your identity in context {self.context} may not {what} in namespace "
                                 f"{self.namespace} ({message}): grant the Role in ci/rbac.yaml (kubectl apply -n "
                                 f"{self.namespace} -f ci/rbac.yaml) or use a context that has it", stage="build")
        if e.status == 404 and "namespaces" in message:
            return PipelineError(f"namespace {self.namespace} does not exist in context {self.context}: create "
                                 f"it (kubectl create namespace {self.namespace}) or pass --kube-namespace",
                                 stage="build")
        if e.status == 401:
            return PipelineError(f"the cluster refused the credentials of context {self.context} ({message}): "
                                 "log in again or fix KUBECONFIG", stage="build")
        return PipelineError(f"the cluster refused to {what}: {e.status} {e.reason} ({message})", stage="build")


def registry_secret(name: str, labels: dict[str, str], docker_config: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": name, "labels": labels},
            "data": {".dockerconfigjson": base64.b64encode(docker_config.encode()).decode()}}


def ca_secret(name: str, labels: dict[str, str], ca: bytes) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name, "labels": labels},
            "data": {"ca.crt": base64.b64encode(ca).decode()}}


def run_job(cluster: Cluster, job: dict[str, Any], *, secrets: list[dict[str, Any]], timeout: float,
            on_log: Callable[[str], None] = print) -> tuple[JobResult, list[str]]:
    """Create the Secrets and the Job, follow the build, return (what ran, the kaniko log)."""
    name = job["metadata"]["name"]
    run = cancel.current()
    if run is not None:  # a SIGKILLed run's leftovers are found from here by the next run
        run.record("kube", json.dumps({"context": cluster.context, "namespace": cluster.namespace, "job": name,
                                       "secrets": [s["metadata"]["name"] for s in secrets]}))
    created: list[str] = []
    done = False
    t0 = time.monotonic()
    try:
        for secret in secrets:
            cluster.call("create secrets", cluster.core.create_namespaced_secret, cluster.namespace, secret)
            created.append(secret["metadata"]["name"])
        cluster.call("create jobs", cluster.batch.create_namespaced_job, cluster.namespace, job)
        deadline = time.monotonic() + timeout
        pod = _wait_for_kaniko(cluster, name, deadline)
        lines = _follow(cluster, pod.metadata.name, on_log)
        term, pod = _wait_for_termination(cluster, name, pod.metadata.name, deadline)
        if term.exit_code != 0:
            raise _failed_build(cluster, name, term, lines)
        digest = (term.message or "").strip()
        if not digest.startswith("sha256:"):
            raise PipelineError(f"kaniko Job {name} succeeded but its termination message holds no digest "
                                f"({digest[:80]!r}): keep --digest-file=/dev/termination-log in ci/kaniko.yaml",
                                stage="build")
        done = True
        return _facts(digest, name, pod, term, t0), lines
    finally:
        if not done:
            cancel.unwinding()
        delete(cluster, name if not done else None, created)
        if run is not None:
            run.forget("kube", json.dumps({"context": cluster.context, "namespace": cluster.namespace,
                                           "job": name, "secrets": [s["metadata"]["name"] for s in secrets]}))


def _follow(cluster: Cluster, pod: str, on_log: Callable[[str], None]) -> list[str]:
    """kaniko's log as it is written (a step may be silent for minutes: no read timeout). A stream that
    breaks loses log lines, not the build: its end is read from the pod's status."""
    from urllib3.exceptions import HTTPError

    lines: list[str] = []
    stream = cluster.call("get pods/log", cluster.core.read_namespaced_pod_log, pod, cluster.namespace,
                          container="kaniko", follow=True, _preload_content=False, _request_timeout=(10, None))
    try:
        for raw in stream.stream():
            for line in raw.decode(errors="replace").splitlines():
                line = ANSI.sub("", line)
                lines.append(line)
                on_log(line)
    except HTTPError as e:
        log.warning("the Job's log stream broke (%s); waiting for the build to end", type(e).__name__)
    return lines


def delete(cluster: Cluster, job: str | None, secrets: list[str]) -> None:
    """The Job (when given) and its pods at once (no grace: nothing of a failed build is worth waiting for),
    and the run's Secrets. Each deletion on its own (one that fails, or finds nothing, does not stop the
    others); best effort: a failure is logged, never raised over the first error."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    def attempt(what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, _request_timeout=10, **kw)
        except ApiException as e:
            if e.status != 404:
                log.warning("could not delete %s in %s: %s %s", what, cluster.namespace, e.status, e.reason)
        except HTTPError as e:
            log.warning("could not delete %s in %s: %s", what, cluster.namespace, e)
        return None

    if job is not None:
        attempt(f"Job {job}", cluster.batch.delete_namespaced_job, job, cluster.namespace,
                propagation_policy="Background")
        pods = attempt(f"the pods of {job}", cluster.core.list_namespaced_pod, cluster.namespace,
                       label_selector=f"job-name={job}")
        for pod in pods.items if pods is not None else []:
            attempt(f"pod {pod.metadata.name}", cluster.core.delete_namespaced_pod, pod.metadata.name,
                    cluster.namespace, grace_period_seconds=0)
    for secret in secrets:
        attempt(f"Secret {secret}", cluster.core.delete_namespaced_secret, secret, cluster.namespace)


def _pods(cluster: Cluster, job: str) -> list[Any]:
    return list(cluster.call("list pods", cluster.core.list_namespaced_pod, cluster.namespace,
                             label_selector=f"job-name={job}").items)


def _job_failure(cluster: Cluster, job: str) -> PipelineError | None:
    status = cluster.call("get jobs", cluster.batch.read_namespaced_job, job, cluster.namespace).status
    for cond in status.conditions or []:
        if cond.type == "Failed" and cond.status == "True":
            if cond.reason == "DeadlineExceeded":
                spec = cluster.batch.read_namespaced_job(job, cluster.namespace, _request_timeout=10).spec
                return PipelineError(f"the Job {job} ran past its activeDeadlineSeconds ({spec.active_deadline_seconds}"
                                     " s) and was stopped: raise --job-deadline (or the manifest's), or find what "
                                     "hangs in its log", stage="build")
            return PipelineError(f"the Job {job} failed ({cond.reason}: {cond.message})", stage="build")
    return None


def _pod_failure(cluster: Cluster, pod: Any) -> PipelineError | None:
    for status in [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]:
        waiting = status.state.waiting
        if waiting is not None and waiting.reason in PULL_ERRORS:
            option = "--kaniko-image" if status.name == "kaniko" else "--git-image"
            return PipelineError(f"the cluster cannot pull {status.image} (container {status.name}: "
                                 f"{waiting.reason}): make it pullable from the nodes, or pass {option}",
                                 stage="build")
    for status in pod.status.init_container_statuses or []:
        term = status.state.terminated
        if status.name == "clone" and term is not None and term.exit_code != 0:
            tail = _log_tail(cluster, pod.metadata.name, "clone")
            env = {e.name: e.value for e in pod.spec.init_containers[0].env or []}
            return PipelineError(f"the Job could not fetch commit {env.get('GIT_REF', '?')[:12]} from "
                                 f"{env.get('GIT_URL', '?')}: {tail or term.reason}; push the commit there, or "
                                 "fix --git-url", stage="build")
    return None


def _wait_for_kaniko(cluster: Cluster, job: str, deadline: float) -> Any:
    def started() -> Any:
        for pod in _pods(cluster, job):
            failure = _pod_failure(cluster, pod)
            if failure is not None:
                raise failure
            for s in pod.status.container_statuses or []:
                if s.name == "kaniko" and (s.state.running or s.state.terminated):
                    return pod
        failure = _job_failure(cluster, job)
        if failure is not None:
            raise failure
        return None

    pod = wait_until(started, timeout=max(1.0, deadline - time.monotonic()), interval=POLL_SECONDS)
    if pod is None:
        raise PipelineError(f"the Job {job}'s kaniko container did not start in time (is the pod Pending? "
                            f"kubectl -n {cluster.namespace} describe pod -l job-name={job})", stage="build")
    return pod


def _wait_for_termination(cluster: Cluster, job: str, pod_name: str, deadline: float) -> tuple[Any, Any]:
    def terminated() -> tuple[Any, Any] | None:
        pod = cluster.call("get pods", cluster.core.read_namespaced_pod, pod_name, cluster.namespace)
        for s in pod.status.container_statuses or []:
            if s.name == "kaniko" and s.state.terminated is not None:
                return s.state.terminated, pod
        return None

    found = wait_until(terminated, timeout=max(1.0, deadline - time.monotonic()), interval=POLL_SECONDS)
    if found is None:
        raise _job_failure(cluster, job) or PipelineError(f"the pod {pod_name} did not finish in time",
                                                          stage="build")
    return found


def _failed_build(cluster: Cluster, job: str, term: Any, lines: list[str]) -> PipelineError:
    failure = _job_failure(cluster, job)
    if failure is not None and "activeDeadlineSeconds" in failure.message:
        return failure
    text = "\n".join(lines)
    if re.search(r"UNAUTHORIZED|authentication required|401 Unauthorized|denied", text, re.I):
        return PipelineError(f"the registry refused kaniko's credentials in the Job {job}: check --creds or the "
                             "auth file (the pipeline makes the Job's Secret from them), or --kube-secret",
                             stage="build", detail=text)
    step = next((ln for ln in reversed(lines) if "error building image" in ln.lower()), "")
    line = step or next((ln for ln in reversed(lines) if "error" in ln.lower()), term.reason or "")
    return PipelineError(f"kaniko Job {job} failed (exit {term.exit_code}): {line.strip()[:240]}", stage="build",
                         detail=text)


def _facts(digest: str, job: str, pod: Any, term: Any, t0: float) -> JobResult:
    created = pod.metadata.creation_timestamp
    conds = {c.type: c.last_transition_time for c in pod.status.conditions or []}

    def since(t: Any) -> float:
        return (t - created).total_seconds() if t is not None and created is not None else 0.0

    phases = {"scheduled": since(conds.get("PodScheduled")), "cloned": since(conds.get("Initialized")),
              "built": since(term.finished_at), "total": time.monotonic() - t0}
    images = {s.name: s.image_id for s in [*(pod.status.init_container_statuses or []),
                                           *(pod.status.container_statuses or [])]}
    return JobResult(digest, job, pod.metadata.name, pod.spec.node_name or "", images, phases)


def _log_tail(cluster: Cluster, pod: str, container: str) -> str:
    try:
        text = cluster.core.read_namespaced_pod_log(pod, cluster.namespace, container=container, tail_lines=5,
                                                    _request_timeout=10)
    except Exception:  # noqa: BLE001 - only a better message is lost
        return ""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def _message(e: Any) -> str:
    try:
        return str(json.loads(e.body).get("message", ""))[:200]
    except (TypeError, ValueError):
        return str(e.body)[:200]


def clean_leftover(entry: str) -> str:
    """A killed run's Job, pods and Secrets (its marker's `kube` entry), deleted; returns what was done."""
    found = json.loads(entry)
    cluster = Cluster(found["context"], found["namespace"])
    delete(cluster, found["job"], found["secrets"])
    return f"Job {found['job']} in {found['namespace']}"
