"""`--kube-context`: submit ci/kaniko.yaml's Job with the official Kubernetes client, follow its logs, and
read the pushed digest from the kaniko container's termination message (its --digest-file)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from imagepipe.errors import PipelineError
from imagepipe.retry import wait_until

log = logging.getLogger("imagepipe.kube")

POLL_SECONDS = 1.0


def _api(context: str) -> Any:
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        # KUBECONFIG read now, not when the client was imported (it may list several files)
        return config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"), context=context)
    except (ConfigException, OSError) as e:
        raise PipelineError(f"cannot use Kubernetes context {context!r}: {e} (check `kubectl config "
                            "get-contexts` or KUBECONFIG)", stage="build") from None


def run_job(context: str, namespace: str, job: dict[str, Any], *, timeout: float = 1800,
            on_log: Callable[[str], None] = print) -> str:
    """Create the Job, wait for its pod, stream the kaniko container's log, and return the digest from the
    termination message. The Job is deleted if anything fails or the wait is interrupted."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = _api(context)
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    name = job["metadata"]["name"]
    try:
        batch.create_namespaced_job(namespace, job)
    except ApiException as e:
        raise PipelineError(f"the cluster refused the Job {name}: {e.status} {e.reason} ({_message(e)})",
                            stage="build") from None
    done = False
    try:
        deadline = time.monotonic() + timeout
        pod = _wait_for_pod(core, namespace, name, deadline)
        stream = core.read_namespaced_pod_log(pod, namespace, container="kaniko", follow=True,
                                              _preload_content=False)
        for raw in stream.stream():
            for line in raw.decode(errors="replace").splitlines():
                on_log(line)
        term = _wait_for_termination(core, namespace, pod, deadline)
        if term.exit_code != 0:
            raise PipelineError(f"kaniko Job {name} failed (exit {term.exit_code}, {term.reason}): "
                                f"{(term.message or '').strip()[:200] or 'see the log above'}", stage="build")
        digest = (term.message or "").strip()
        if not digest.startswith("sha256:"):
            raise PipelineError(f"kaniko Job {name} succeeded but its termination message holds no digest "
                                f"({digest[:80]!r}): keep --digest-file=/dev/termination-log in ci/kaniko.yaml",
                                stage="build")
        done = True
        return digest
    except ApiException as e:
        raise PipelineError(f"following the Job {name} failed: {e.status} {e.reason}", stage="build") from None
    finally:
        if not done:  # a failed or interrupted build leaves nothing running in the cluster
            try:
                batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
            except ApiException:
                log.warning("could not delete Job %s in %s", name, namespace)


def _wait_for_pod(core: Any, namespace: str, job_name: str, deadline: float) -> str:
    def started() -> str | None:
        for pod in core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items:
            statuses = {s.name: s for s in (pod.status.container_statuses or [])}
            kaniko = statuses.get("kaniko")
            if kaniko is not None and (kaniko.state.running or kaniko.state.terminated):
                return str(pod.metadata.name)
            waiting = kaniko.state.waiting if kaniko is not None else None
            if waiting is not None and waiting.reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
                raise PipelineError(f"the cluster cannot pull the kaniko executor: {waiting.reason} "
                                    f"({waiting.message or ''})", stage="build")
        return None

    pod = wait_until(started, timeout=deadline - time.monotonic(), interval=POLL_SECONDS)
    if pod is None:
        raise PipelineError(f"the Job {job_name}'s kaniko container did not start in time", stage="build")
    return pod


def _wait_for_termination(core: Any, namespace: str, pod: str, deadline: float) -> Any:
    def terminated() -> Any:
        for s in core.read_namespaced_pod(pod, namespace).status.container_statuses or []:
            if s.name == "kaniko" and s.state.terminated is not None:
                return s.state.terminated
        return None

    state = wait_until(terminated, timeout=deadline - time.monotonic(), interval=POLL_SECONDS)
    if state is None:
        raise PipelineError(f"the pod {pod} did not finish in time", stage="build")
    return state


def _message(e: Any) -> str:
    import json

    try:
        return str(json.loads(e.body).get("message", ""))[:200]
    except (TypeError, ValueError):
        return str(e.body)[:200]
