"""sigstore's policy-controller installed into a running cluster through its API (the kubernetes client): the
manifests of ci/policy-controller with the controller's image filled in, waited for until the webhook
Deployment is Available and the controller has put its own CA into every webhook configuration and into
its CRDs' conversion webhook; then the policies of ci/admission-policy.yaml for a public key and an image
glob, waited for until the controller has compiled them; and a namespace labelled so that they are enforced
there. Each failure is one line (PipelineError) naming what did not happen.

The API server reaches the webhook's Service without kube-proxy only by its endpoints
(--enable-aggregator-routing, imagepipe.exec.cmdline.kube): on the local cluster that flag is set."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from imagepipe.errors import PipelineError
from imagepipe.exec.retry import wait_until
from imagepipe.paths import ROOT
from imagepipe.supplychain import admissionpolicy

MANIFESTS = ROOT / "ci/policy-controller"
IMAGE_PLACEHOLDER = "POLICY_CONTROLLER_IMAGE"
NAMESPACE = "cosign-system"
DEPLOYMENT = "webhook"
VALIDATING = ("policy.sigstore.dev", "validating.clusterimagepolicy.sigstore.dev")
MUTATING = ("policy.sigstore.dev", "defaulting.clusterimagepolicy.sigstore.dev")
CRDS = ("clusterimagepolicies.policy.sigstore.dev", "trustroots.policy.sigstore.dev")
POLICIES_CONFIGMAP = "config-image-policies"  # where the controller puts each policy it compiled
ENFORCE_LABEL = "policy.sigstore.dev/include"
GROUP, VERSION, PLURAL = "policy.sigstore.dev", "v1beta1", "clusterimagepolicies"
READY_SECONDS = 240.0  # the image's pull, the webhook's start (its probes wait 20 s), its certificates


def manifests(image: str, *, source: Path = MANIFESTS) -> list[dict[str, Any]]:
    """Every object of `source`'s files, in their order, the Deployment's image set to `image`. Pure."""
    docs = [d for path in sorted(source.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]
    containers = [c for d in docs if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]
                  if c.get("image") == IMAGE_PLACEHOLDER]
    if len(containers) != 1:
        raise ValueError(f"{source} should have one container whose image is {IMAGE_PLACEHOLDER}, not "
                         f"{len(containers)}")
    containers[0]["image"] = image
    return docs


def _refusal(e: Any) -> str:
    """An ApiException's status and message, in one line; where the API server could not call the webhook,
    what it needs for that."""
    try:
        message = json.loads(e.body).get("message", "")
    except (TypeError, ValueError):
        message = str(e.body or e.reason)
    unreachable = " (the API server reaches a webhook's Service without kube-proxy only with " \
                  "--enable-aggregator-routing=true)" if "failed calling webhook" in message else ""
    return f"{e.status} {e.reason}: {message}{unreachable}".replace("\n", " ")


def _polled(probe: Callable[[], bool]) -> Callable[[], bool]:
    """`probe`, with an API or connection error taken as "not yet": a read of a busy cluster may fail once."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    def polled() -> bool:
        try:
            return probe()
        except (ApiException, HTTPError):
            return False
    return polled


def create(api: Any, docs: list[dict[str, Any]]) -> list[str]:
    """Each object created in its turn (as `kubectl create -f`); one that exists already is left as it is.
    Returns the names of those that existed."""
    from kubernetes import utils

    existed = []
    for doc in docs:
        meta = doc["metadata"]
        what = f"{doc['kind']} {meta['namespace'] + '/' if 'namespace' in meta else ''}{meta['name']}"
        try:
            utils.create_from_dict(api, doc)
        except utils.FailToCreateError as e:
            refused = [x for x in e.api_exceptions if x.status != 409]
            if refused:
                raise PipelineError(f"policy-controller: the cluster refused to create {what} "
                                    f"({_refusal(refused[0])})", stage="cluster") from None
            existed.append(what)
    return existed


def ca_missing(api: Any) -> list[str]:
    """The webhook configurations and CRD conversions that do not carry the controller's CA yet."""
    from kubernetes import client

    registration, extensions = client.AdmissionregistrationV1Api(api), client.ApiextensionsV1Api(api)
    configs = [(f"ValidatingWebhookConfiguration {n}", registration.read_validating_webhook_configuration(n))
               for n in VALIDATING]
    configs += [(f"MutatingWebhookConfiguration {n}", registration.read_mutating_webhook_configuration(n))
                for n in MUTATING]
    missing = [what for what, c in configs if not c.webhooks or not all(w.client_config.ca_bundle for w in c.webhooks)]
    for name in CRDS:
        conversion = extensions.read_custom_resource_definition(name).spec.conversion
        if conversion.strategy == "Webhook" and not conversion.webhook.client_config.ca_bundle:
            missing.append(f"CustomResourceDefinition {name}")
    return missing


def _pods(api: Any) -> str:
    """The webhook's pods, each with why it is not ready (for the error line)."""
    from kubernetes import client

    pods = client.CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector="role=webhook").items
    seen = []
    for pod in pods:
        why = [s.state.waiting.reason for s in pod.status.container_statuses or [] if s.state.waiting]
        why += [f"restarted {s.restart_count}x" for s in pod.status.container_statuses or [] if s.restart_count]
        seen.append(f"{pod.metadata.name} {pod.status.phase}{' (' + ', '.join(why) + ')' if why else ''}")
    return "; ".join(seen) or "no pod"


def wait_ready(api: Any, *, timeout: float = READY_SECONDS) -> float:
    """Seconds until the webhook Deployment is Available and every configuration carries the controller's CA;
    one line naming what is missing when `timeout` runs out."""
    from kubernetes import client

    apps = client.AppsV1Api(api)
    t0 = time.monotonic()

    def available() -> bool:
        status = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE).status
        return any(c.type == "Available" and c.status == "True" for c in status.conditions or [])

    if not wait_until(_polled(available), timeout=timeout, interval=1):
        raise PipelineError(f"policy-controller: the Deployment {NAMESPACE}/{DEPLOYMENT} was not Available within "
                            f"{timeout:g} s (pods: {_pods(api)})", stage="cluster")
    left = max(1.0, timeout - (time.monotonic() - t0))
    if not wait_until(_polled(lambda: not ca_missing(api)), timeout=left, interval=1):
        raise PipelineError(f"policy-controller: no CA from the controller after {timeout:g} s in "
                            f"{', '.join(ca_missing(api))} (the webhook's log: kubectl -n {NAMESPACE} logs "
                            f"deploy/{DEPLOYMENT})", stage="cluster")
    return time.monotonic() - t0


def install(api: Any, image: str, *, timeout: float = READY_SECONDS) -> float:
    """ci/policy-controller with `image` in the cluster of `api`, ready to admit; returns the seconds it took
    to become so."""
    create(api, manifests(image))
    return wait_ready(api, timeout=timeout)


def _put_policy(custom: Any, doc: dict[str, Any]) -> None:
    from kubernetes.client.exceptions import ApiException

    name = doc["metadata"]["name"]
    try:
        custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, doc)
        return
    except ApiException as e:
        if e.status != 409:
            raise PipelineError(f"policy-controller: the cluster refused the ClusterImagePolicy {name} "
                                f"({_refusal(e)})", stage="cluster") from None
    current = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    doc = {**doc, "metadata": {**doc["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
    try:
        custom.replace_cluster_custom_object(GROUP, VERSION, PLURAL, name, doc)
    except ApiException as e:
        raise PipelineError(f"policy-controller: the cluster refused to replace the ClusterImagePolicy {name} "
                            f"({_refusal(e)})", stage="cluster") from None


def compiled(api: Any, names: tuple[str, ...], marks: tuple[str, ...]) -> list[str]:
    """The policies the controller has not compiled into config-image-policies yet, or not with each of
    `marks` (the glob, a line of the key) in them."""
    from kubernetes import client

    data = client.CoreV1Api(api).read_namespaced_config_map(POLICIES_CONFIGMAP, NAMESPACE).data or {}
    return [n for n in names if n not in data or not all(m in data[n] for m in marks)]


def apply_policy(api: Any, public_key: str, image_glob: str, *, timeout: float = 60.0) -> None:
    """ci/admission-policy.yaml for `public_key` (PEM) and the images `image_glob` matches, created or
    replaced, and waited for until the controller has compiled both policies."""
    from kubernetes import client

    try:
        docs = admissionpolicy.documents(public_key, image_glob)
    except ValueError as e:
        raise PipelineError(f"policy-controller: {e}", stage="cluster") from None
    custom = client.CustomObjectsApi(api)
    for doc in docs:
        _put_policy(custom, doc)
    names = tuple(d["metadata"]["name"] for d in docs)
    marks = (image_glob, public_key.strip().splitlines()[1])
    if not wait_until(_polled(lambda: not compiled(api, names, marks)), timeout=timeout, interval=0.5):
        raise PipelineError(f"policy-controller: the controller did not compile "
                            f"{', '.join(compiled(api, names, marks))} into {NAMESPACE}/{POLICIES_CONFIGMAP} within "
                            f"{timeout:g} s (kubectl get clusterimagepolicies -o yaml shows why)", stage="cluster")


def enforce(api: Any, namespace: str) -> None:
    """The policies enforced in `namespace` (created first when missing): its label the webhooks select."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api)
    labels = {"metadata": {"labels": {ENFORCE_LABEL: "true"}}}
    try:
        core.patch_namespace(namespace, labels)
    except ApiException as e:
        if e.status != 404:
            raise PipelineError(f"policy-controller: cannot label namespace {namespace} ({_refusal(e)})",
                                stage="cluster") from None
        core.create_namespace({"metadata": {"name": namespace, **labels["metadata"]}})
