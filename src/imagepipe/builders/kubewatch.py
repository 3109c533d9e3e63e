"""Reading a cluster Job as it runs (builders.kubejob submits it): its pod, each way it can fail (an image
the nodes cannot pull, the clone step, the deadline, kaniko's exit), and what ran (node, images, phases)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from imagepipe.builders import kanikofailure
from imagepipe.errors import PipelineError, pip_failure
from imagepipe.exec.retry import wait_until


class Cluster(Protocol):
    """What the watch reads of kubejob.Cluster (a protocol, so the two modules do not import each other)."""
    namespace: str
    core: Any
    batch: Any

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any: ...

POLL_SECONDS = 1.0
CONTEXT_IN_REPO = Path("backend")  # the Job's build context in the cloned repository (ci/kaniko.yaml)
PULL_ERRORS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
CONFIG_ERROR = "CreateContainerConfigError"  # e.g. a Secret, or an item of one, that the container's env names
# the option that names each container's image: the kaniko Job's, and the pipeline's own Job's (`submit`)
IMAGE_OPTIONS = {"kaniko": "--kaniko-image", "pipeline": "--pipeline-image"}


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


def pods(cluster: Cluster, job: str) -> list[Any]:
    return list(cluster.call("list pods", cluster.core.list_namespaced_pod, cluster.namespace,
                             label_selector=f"job-name={job}").items)


def job_failure(cluster: Cluster, job: str) -> PipelineError | None:
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


def pod_failure(cluster: Cluster, pod: Any) -> PipelineError | None:
    for cond in pod.status.conditions or []:
        # the scheduler waits for ever for a claim that does not exist: said at once (other reasons, such as
        # resources, may pass, and are left to the deadline)
        if (cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable"
                and "persistentvolumeclaim" in (cond.message or "") and "not found" in (cond.message or "")):
            claim = re.search(r'persistentvolumeclaim "([^"]+)"', cond.message)
            name = claim.group(1) if claim else "?"
            fix = ("ci/lookaside.yaml makes imagepipe-lookaside" if name == "imagepipe-lookaside"
                   else f"create it, or fix --pip-cache {name}")
            return PipelineError(f"the pod {pod.metadata.name} cannot be scheduled: its volume claim {name} does "
                                 f"not exist in {cluster.namespace} ({fix})", stage="build")
    for status in [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]:
        waiting = status.state.waiting
        if waiting is not None and waiting.reason in PULL_ERRORS:
            option = IMAGE_OPTIONS.get(status.name, "--git-image")
            return PipelineError(f"the cluster cannot pull {status.image} (container {status.name}: "
                                 f"{waiting.reason}): make it pullable from the nodes, or pass {option}",
                                 stage="build")
        # the container's configuration cannot be made (a Secret item its environment names is missing, such
        # as ci/pipeline-job.yaml's cosign.password): the kubelet retries for ever, so it is said at once; a
        # kubelet whose Secret cache is not synced yet says the same reason for a moment, and is waited for
        if (waiting is not None and waiting.reason == CONFIG_ERROR
                and "failed to sync" not in (waiting.message or "")):
            return PipelineError(f"the pod {pod.metadata.name} cannot start its container {status.name} "
                                 f"({CONFIG_ERROR}: {waiting.message or '?'}); fix what it names (kubectl -n "
                                 f"{cluster.namespace} describe pod {pod.metadata.name})", stage="build")
    for status in pod.status.init_container_statuses or []:
        term = status.state.terminated
        if status.name == "clone" and term is not None and term.exit_code != 0:
            tail = log_tail(cluster, pod.metadata.name, "clone")
            env = {e.name: e.value for e in pod.spec.init_containers[0].env or []}
            return PipelineError(f"the Job could not fetch commit {env.get('GIT_REF', '?')[:12]} from "
                                 f"{env.get('GIT_URL', '?')}: {tail or term.reason}; push the commit there, or "
                                 "fix --git-url", stage="build")
    return None


def pod_not_created(cluster: Cluster, job: str) -> PipelineError | None:
    """The Job controller's refusal to make the pod (a missing ServiceAccount, a quota, an admission policy),
    which it records as an event on the Job and nowhere else."""
    events = cluster.call("list events", cluster.core.list_namespaced_event, cluster.namespace,
                          field_selector=f"involvedObject.name={job}").items
    refused = [e.message for e in events if e.reason == "FailedCreate" and e.message]
    if not refused:
        return None
    why = refused[-1].strip()
    fix = ("apply ci/rbac.yaml in that namespace" if "serviceaccount" in why.lower()
           else f"see kubectl -n {cluster.namespace} describe job {job}")
    return PipelineError(f"the cluster refused to create the pod of Job {job}: {why[:240]}; {fix}", stage="build")


def wait_for_kaniko(cluster: Cluster, job: str, deadline: float, container: str = "kaniko") -> Any:
    """The Job's pod once `container` runs (or has ended); each way it cannot start is one line."""
    def started() -> Any:
        failure = job_failure(cluster, job)  # first: a deadline kills the pod, which then looks failed
        if failure is not None:
            raise failure
        listed = pods(cluster, job)
        if not listed:
            failure = pod_not_created(cluster, job)
            if failure is not None:
                raise failure
        for pod in listed:
            failure = pod_failure(cluster, pod)
            if failure is not None:
                # the pod may have been killed for the Job's deadline a moment before the Job says so
                raise wait_until(lambda: job_failure(cluster, job), timeout=3, interval=0.5) or failure
            for s in pod.status.container_statuses or []:
                if s.name == container and (s.state.running or s.state.terminated):
                    return pod
        return None

    pod = wait_until(started, timeout=max(1.0, deadline - time.monotonic()), interval=POLL_SECONDS)
    if pod is None:
        raise PipelineError(f"the Job {job}'s {container} container did not start in time (is the pod Pending? "
                            f"kubectl -n {cluster.namespace} describe pod -l job-name={job})", stage="build")
    return pod


def wait_for_termination(cluster: Cluster, job: str, pod_name: str, deadline: float,
                         container: str = "kaniko") -> tuple[Any, Any]:
    def terminated() -> tuple[Any, Any] | None:
        failure = deadline_failure(cluster, job)  # its pod is deleted, there is nothing to read
        if failure is not None:
            raise failure
        pod = _read_pod(cluster, pod_name)
        term = None if pod is None else terminated_state(pod, container)
        if pod is None or (term is not None and killed_by_deletion(pod, term)):
            # deleted: for the Job's deadline (a moment before the Job says so), or by someone
            raise wait_until(lambda: deadline_failure(cluster, job), timeout=5, interval=0.5) or PipelineError(
                f"the pod {pod_name} of Job {job} was deleted while {container} ran (kubectl -n {cluster.namespace} "
                f"describe job {job})", stage="build")
        return None if term is None else (term, pod)

    found = wait_until(terminated, timeout=max(1.0, deadline - time.monotonic()), interval=POLL_SECONDS)
    if found is None:
        raise job_failure(cluster, job) or PipelineError(f"the pod {pod_name} did not finish in time",
                                                          stage="build")
    return found


def terminated_state(pod: Any, container: str) -> Any | None:
    for s in pod.status.container_statuses or []:
        if s.name == container and s.state.terminated is not None:
            return s.state.terminated
    return None


def killed_by_deletion(pod: Any, term: Any) -> bool:
    """A Job's pod keeps its object after a deletion until the Job controller drops its tracking finalizer;
    meanwhile the kubelet's SIGTERM ends the container non-zero, which is the deletion, not its own exit."""
    return pod.metadata.deletion_timestamp is not None and term.exit_code != 0


def deadline_failure(cluster: Cluster, job: str) -> PipelineError | None:
    """The Job's failure, when it is its deadline (a pod deleted by hand fails the Job too, as its backoff
    limit: that is said as the deletion it was)."""
    failure = job_failure(cluster, job)
    return failure if failure is not None and "activeDeadlineSeconds" in failure.message else None


def _read_pod(cluster: Cluster, name: str) -> Any | None:
    """The pod, or None once it is gone (any other refusal is one line, as for every call)."""
    from kubernetes.client.exceptions import ApiException

    def read(**kw: Any) -> Any:
        try:
            return cluster.core.read_namespaced_pod(name, cluster.namespace, **kw)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    return cluster.call("get pods", read)


def failed_build(cluster: Cluster, job: str, term: Any, lines: list[str]) -> PipelineError:
    # killed for the Job's deadline: the Job may say so a moment after the container ended
    failure = wait_until(lambda: deadline_failure(cluster, job), timeout=5, interval=0.5)
    if failure is not None:
        return failure
    return explain_build(job, term.exit_code, term.reason or "", lines)


def explain_build(job: str, exit_code: int, reason: str, lines: list[str]) -> PipelineError:
    """A kaniko container that ended non-zero, from its log: one line naming the cause and the fix."""
    text = kanikofailure.clean("\n".join(lines))
    failure = kanikofailure.classify(text.splitlines())
    if failure.kind == "run-step":
        explained = pip_failure(text, CONTEXT_IN_REPO)
        if explained:
            explained.message = f"kaniko Job {job}: {explained.message}"
            return explained
    if failure.kind == "credentials":
        return PipelineError(f"the registry refused kaniko's credentials in the Job {job} ({failure.line[:160]}): "
                             "check --creds or the auth file (the pipeline makes the Job's Secret from them), or "
                             "--kube-secret", stage="build", detail=text)
    line = failure.line or reason
    return PipelineError(f"kaniko Job {job} failed (exit {exit_code}): {line[:240]}", stage="build",
                         detail=text)


def facts(digest: str, job: str, pod: Any, term: Any, t0: float) -> JobResult:
    created = pod.metadata.creation_timestamp
    conds = {c.type: c.last_transition_time for c in pod.status.conditions or []}

    def since(t: Any) -> float:
        return (t - created).total_seconds() if t is not None and created is not None else 0.0

    phases = {"scheduled": since(conds.get("PodScheduled")), "cloned": since(conds.get("Initialized")),
              "built": since(term.finished_at), "total": time.monotonic() - t0}
    images = {s.name: s.image_id for s in [*(pod.status.init_container_statuses or []),
                                           *(pod.status.container_statuses or [])]}
    return JobResult(digest, job, pod.metadata.name, pod.spec.node_name or "", images, phases)


def log_tail(cluster: Cluster, pod: str, container: str) -> str:
    try:
        text = cluster.core.read_namespaced_pod_log(pod, cluster.namespace, container=container, tail_lines=5,
                                                    _request_timeout=10)
    except Exception:  # noqa: BLE001 - only a better message is lost
        return ""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""
