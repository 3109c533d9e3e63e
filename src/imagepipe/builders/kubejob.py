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
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from imagepipe.builders import kanikofailure, kubewatch
from imagepipe.builders.kubewatch import JobResult
from imagepipe.errors import PipelineError
from imagepipe.exec import cancel
from imagepipe.exec.retry import wait_until

log = logging.getLogger("imagepipe.kube")

IN_CLUSTER = "in-cluster"  # --kube-context in-cluster: the ServiceAccount of the pod the pipeline runs in


class Cluster:
    """One context and namespace; every API error becomes one line naming the cause and the fix."""

    def __init__(self, context: str, namespace: str) -> None:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        self.context, self.namespace = context, namespace
        try:
            if context == IN_CLUSTER:  # a pod's own ServiceAccount token, CA and the API's service address
                configuration = client.Configuration()
                config.load_incluster_config(client_configuration=configuration)
                api = client.ApiClient(configuration)
            else:  # KUBECONFIG read now, not when the client was imported (it may list several files)
                api = config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"), context=context)
        except (ConfigException, OSError) as e:
            where = ("this process is not in a pod with a mounted ServiceAccount token (automountServiceAccountToken)"
                     if context == IN_CLUSTER else "check `kubectl config get-contexts` or KUBECONFIG")
            raise PipelineError(f"cannot use Kubernetes context {context!r}: {e} ({where})", stage="build") from None
        self.server = api.configuration.host
        self.api = api
        self.batch, self.core = client.BatchV1Api(api), client.CoreV1Api(api)

    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api)

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
        if e.status == 404 and ("namespaces" in message or what == "get namespaces"):
            return PipelineError(f"namespace {self.namespace} does not exist in context {self.context}: create "
                                 f"it (kubectl create namespace {self.namespace}) or pass --kube-namespace",
                                 stage="build")
        if e.status == 401:
            return PipelineError(f"the cluster refused the credentials of context {self.context} ({message}): "
                                 "log in again or fix KUBECONFIG", stage="build")
        if e.status == 400 and 'admission webhook "policy.sigstore.dev" denied' in message:
            return PipelineError(f"namespace {self.namespace} enforces sigstore's policy-controller (labelled "
                                 f"policy.sigstore.dev/include=true), which refused to {what} ({message}): the run's "
                                 "Job and Deployment proof run images nobody has signed yet (the executor, the clone "
                                 "step, the digest before promote signs it), so give --kube-namespace a namespace "
                                 "that is not enforced (docs/admission.md)", stage="build")
        return PipelineError(f"the cluster refused to {what}: {e.status} {e.reason} ({message})", stage="build")


def check_namespace(cluster: Cluster) -> None:
    """The cluster answers and the namespace exists, before anything else is checked or made (listing in a
    missing namespace answers an empty list, so it is read). An identity that may not read namespaces (a
    namespaced Role) learns of a missing one when the first object is created."""
    from kubernetes.client.exceptions import ApiException

    def read(**kw: Any) -> Any:
        try:
            return cluster.core.read_namespace(cluster.namespace, **kw)
        except ApiException as e:
            if e.status == 403:
                return None
            raise

    cluster.call("get namespaces", read)


def node_architectures(cluster: Cluster) -> set[str]:
    """The architectures of the cluster's Ready-or-not nodes (kubernetes.io/arch); empty when this identity
    may not list nodes (a namespaced Role): each platform is then built with --custom-platform on any node,
    which is native where the node happens to match."""
    from kubernetes.client.exceptions import ApiException

    def listed(**kw: Any) -> Any:
        try:
            return cluster.core.list_node(**kw)
        except ApiException as e:
            if e.status in (401, 403):
                return None
            raise

    nodes = cluster.call("list nodes", listed)  # an unreachable cluster is its one line
    if nodes is None:
        return set()
    return {str((n.metadata.labels or {}).get("kubernetes.io/arch")) for n in nodes.items
            if (n.metadata.labels or {}).get("kubernetes.io/arch")}


def registry_secret(name: str, labels: dict[str, str], docker_config: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": name, "labels": labels},
            "data": {".dockerconfigjson": base64.b64encode(docker_config.encode()).decode()}}


def ca_secret(name: str, labels: dict[str, str], ca: bytes) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name, "labels": labels},
            "data": {"ca.crt": base64.b64encode(ca).decode()}}


POD_ENV = ("IMAGEPIPE_POD_NAME", "IMAGEPIPE_POD_UID", "IMAGEPIPE_POD_NAMESPACE")  # ci/pipeline-job.yaml's


def owned(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """`obj` owned by the pod this pipeline runs in, when it runs in one of the same namespace (the downward
    API's POD_ENV): deleting that pod, or its Job, deletes the run's Jobs, Secrets and Deployments with it
    (the garbage collector), even when the pipeline was killed before it could. An owner in another namespace
    would count as gone, so then nothing is set."""
    name, uid, pod_namespace = (os.environ.get(k) for k in POD_ENV)
    if not (name and uid and pod_namespace == namespace):
        return obj
    ref = {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}
    return {**obj, "metadata": {**obj.get("metadata", {}), "ownerReferences": [ref]}}


class _Submitted:
    """What `_submitted` deletes when it ends: everything, unless `keep` is set (the Job then stays for its
    TTL; the Secrets go either way)."""

    keep = False


@contextlib.contextmanager
def _submitted(cluster: Cluster, job: dict[str, Any], secrets: list[dict[str, Any]], *,
               grace: int | None) -> Iterator[_Submitted]:
    """The Secrets, then the Job, created and named in the run's marker (a SIGKILLed run's leftovers are found
    from there by the next run); on the way out, deleted as `_Submitted` says, pods given `grace`."""
    name = job["metadata"]["name"]
    run = cancel.current()
    entry = json.dumps({"context": cluster.context, "namespace": cluster.namespace, "job": name,
                        "secrets": [s["metadata"]["name"] for s in secrets]})
    if run is not None:
        run.record("kube", entry)
    created: list[str] = []
    outcome = _Submitted()
    try:
        for secret in secrets:
            cluster.call("create secrets", cluster.core.create_namespaced_secret, cluster.namespace,
                         owned(secret, cluster.namespace))
            created.append(secret["metadata"]["name"])
        cluster.call("create jobs", cluster.batch.create_namespaced_job, cluster.namespace,
                     owned(job, cluster.namespace))
        yield outcome
    finally:
        if not outcome.keep:
            cancel.unwinding()
        delete(cluster, None if outcome.keep else name, created, grace=grace)
        if run is not None:
            run.forget("kube", entry)


def run_job(cluster: Cluster, job: dict[str, Any], *, secrets: list[dict[str, Any]], timeout: float,
            on_log: Callable[[str], None] = print) -> tuple[JobResult, list[str]]:
    """Create the Secrets and the Job, follow the build, return (what ran, the kaniko log)."""
    name = job["metadata"]["name"]
    t0 = time.monotonic()
    with _submitted(cluster, job, secrets, grace=0) as outcome:
        deadline = time.monotonic() + timeout
        pod = kubewatch.wait_for_kaniko(cluster, name, deadline)
        lines = _follow(cluster, pod.metadata.name, on_log)
        term, pod = kubewatch.wait_for_termination(cluster, name, pod.metadata.name, deadline)
        if term.exit_code != 0:
            raise kubewatch.failed_build(cluster, name, term, lines)
        digest = (term.message or "").strip()
        if not digest.startswith("sha256:"):
            raise PipelineError(f"kaniko Job {name} succeeded but its termination message holds no digest "
                                f"({digest[:80]!r}): keep --digest-file=/dev/termination-log in ci/kaniko.yaml",
                                stage="build")
        outcome.keep = True
        return kubewatch.facts(digest, name, pod, term, t0), lines


def run_to_end(cluster: Cluster, job: dict[str, Any], *, secrets: list[dict[str, Any]], timeout: float,
               container: str, on_log: Callable[[str], None] = print) -> tuple[int, list[str]]:
    """Create the Secrets and a Job, follow `container`'s log to its end: (its exit code, its log). The Job
    stays for its TTL when the container exited 0; otherwise, or when interrupted, it is deleted with its
    pods and the Secrets, the pods given their grace period, so a pipeline in one cleans up what it made."""
    name = job["metadata"]["name"]
    with _submitted(cluster, job, secrets, grace=None) as outcome:
        deadline = time.monotonic() + timeout
        pod = kubewatch.wait_for_kaniko(cluster, name, deadline, container=container)
        lines = _follow(cluster, pod.metadata.name, on_log, container=container)
        term, _ = kubewatch.wait_for_termination(cluster, name, pod.metadata.name, deadline, container=container)
        if term.exit_code != 0:  # killed for the Job's deadline: the Job may say so a moment after
            failure = wait_until(lambda: kubewatch.deadline_failure(cluster, name), timeout=5, interval=0.5)
            if failure is not None:
                raise failure
        outcome.keep = term.exit_code == 0
        return int(term.exit_code), lines


def _follow(cluster: Cluster, pod: str, on_log: Callable[[str], None], container: str = "kaniko") -> list[str]:
    """A container's log as it is written (a step may be silent for minutes: no read timeout). A stream that
    breaks loses log lines, not the build: its end is read from the pod's status."""
    from urllib3.exceptions import HTTPError

    lines: list[str] = []
    stream = cluster.call("get pods/log", cluster.core.read_namespaced_pod_log, pod, cluster.namespace,
                          container=container, follow=True, _preload_content=False, _request_timeout=(10, None))
    try:
        for raw in stream.stream():
            for line in raw.decode(errors="replace").splitlines():
                line = kanikofailure.clean(line)
                lines.append(line)
                on_log(line)
    except HTTPError as e:
        log.warning("the Job's log stream broke (%s); waiting for the build to end", type(e).__name__)
    return lines


def _attempt(cluster: Cluster, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """One deletion (or the listing before it): a failure is logged, never raised; not found is no failure."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn(*args, _request_timeout=10, **kw)
    except ApiException as e:
        if e.status != 404:
            log.warning("could not delete %s in %s: %s %s", what, cluster.namespace, e.status, e.reason)
    except HTTPError as e:
        log.warning("could not delete %s in %s: %s", what, cluster.namespace, e)
    return None


def _delete_pods(cluster: Cluster, selector: str, what: str, grace: int | None = 0) -> None:
    pods = _attempt(cluster, what, cluster.core.list_namespaced_pod, cluster.namespace, label_selector=selector)
    more = {} if grace is None else {"grace_period_seconds": grace}
    for pod in pods.items if pods is not None else []:
        _attempt(cluster, f"pod {pod.metadata.name}", cluster.core.delete_namespaced_pod, pod.metadata.name,
                 cluster.namespace, **more)


def delete(cluster: Cluster, job: str | None, secrets: list[str], grace: int | None = 0) -> None:
    """The Job (when given) and its pods, at once by default (no grace: nothing of a failed build is worth
    waiting for; None: the pods' own grace period), and the run's Secrets. Each deletion on its own (one
    that fails, or finds nothing, does not stop the others); best effort: a failure is logged, never raised
    over the first error."""
    if job is not None:
        _attempt(cluster, f"Job {job}", cluster.batch.delete_namespaced_job, job, cluster.namespace,
                 propagation_policy="Background")
        _delete_pods(cluster, f"job-name={job}", f"the pods of {job}", grace)
    for secret in secrets:
        _attempt(cluster, f"Secret {secret}", cluster.core.delete_namespaced_secret, secret, cluster.namespace)


def delete_deployment(cluster: Cluster, name: str) -> None:
    """A Deployment, its pods at once (no grace) and its Service of the same name; best effort, as delete()."""
    _attempt(cluster, f"Deployment {name}", cluster.apps().delete_namespaced_deployment, name, cluster.namespace,
             propagation_policy="Background")
    _attempt(cluster, f"Service {name}", cluster.core.delete_namespaced_service, name, cluster.namespace)
    _delete_pods(cluster, f"app.kubernetes.io/name={name}", f"the pods of {name}")


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
    for name in found.get("deployments", []):
        delete_deployment(cluster, name)
    what = [f"Job {found['job']}"] if found["job"] else [f"Deployment {d}" for d in found.get("deployments", [])]
    return f"{', '.join(what)} in {found['namespace']}"
