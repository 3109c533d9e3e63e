"""sigstore's policy-controller on the local cluster, installed as a team installs it (ci/policy-controller, its
image built here from ci/admission) with ci/admission-policy.yaml for the pipeline's cosign key, enforced in one
namespace. Through the API server: a digest the pipeline promoted is admitted and becomes Ready, and so is
`latest`, which the controller resolves to that digest; an unsigned image of the same repository, one signed
by another key, one whose verification attestation records a failed check and one signed without any
verification attestation are each refused with the controller's reason. A namespace without the label (where
the pipeline's own Deployment proof runs, before promote signs) admits what it is given.

No pipeline run of its own: green's promoted digest is copied into the cluster's registry by `cosign copy`,
with the signature and the attestations promote made for it (each names the digest, not the repository, so
it verifies at the copy). The refused images are small ones built here, signed and attested by the test with
the project's cosign builders: with the pipeline's own key, unless the case is another key."""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_support import NAMESPACE, wait_for
from support import MCP_ENV

from imagepipe.cluster import admission, images, policycontroller
from imagepipe.exec import cmdline, runner
from imagepipe.host import quirks
from imagepipe.services import sigstore
from imagepipe.supplychain import cosigning

pytestmark = pytest.mark.e2e

ENFORCED = "imagepipe-enforced"  # labelled policy.sigstore.dev/include=true
REPO = "todo-backend-admission"
PLAIN = cmdline.CosignRegistry(tls_verify=False)  # the session's and the cluster's registries speak plain HTTP
DENIED = 'admission webhook "policy.sigstore.dev" denied the request: validation failed: '
SIGNED, VERIFIED = "failed policy: imagepipe-signed", "failed policy: imagepipe-verified"


@dataclass(frozen=True)
class Enforced:
    api: Any  # the cluster's admin client
    repo: str  # REGISTRY/REPO in the cluster's registry: what the policies' glob matches
    promoted: str  # green's promoted digest there, REPO@sha256:…, with promote's signature and attestations
    unsigned: str  # a small image of the same repository, never signed
    key: cosigning.CosignKey  # the pipeline's own pair: green's promote signed with it
    verification: dict[str, Any]  # the verification predicate promote attested for green's digest
    deployment: dict[str, Any]  # `pipeline.py deployment` of the promoted digest: the Deployment alone
    work: Path


def _tiny(repo: str, tag: str, work: Path) -> str:
    """A small image of its own (one file naming `tag`, on nothing: the controller judges it unrun), pushed as
    REPO:tag; returns REPO@sha256:…."""
    context = work / f"image-{tag}"
    context.mkdir()
    (context / "marker").write_text(f"{tag}\n")
    (context / "Containerfile").write_text("FROM scratch\nCOPY marker /marker\n")
    local = f"localhost/imagepipe-admission-{tag}:1"
    runner.run(cmdline.buildah_bud(quirks.detect(), containerfile=context / "Containerfile", context=context,
                                   tags=[local]), timeout=300)
    images.mirror(local, f"{repo}:{tag}")
    digest = json.loads(runner.run(cmdline.skopeo_inspect(f"{repo}:{tag}"), timeout=120).stdout)["Digest"]
    return f"{repo}@{digest}"


def _bare(name: str, image: str) -> dict[str, Any]:
    """A Deployment of `image` and nothing else (the refused ones never get a pod)."""
    labels = {"app.kubernetes.io/name": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": image}]}}}}


def _answer(api: Any, image: str, *, namespace: str = ENFORCED, dry_run: bool = False) -> tuple[int, str]:
    """The API server's answer to a Deployment of `image`: (201, "") when it admits it (a real one is deleted
    again), else the status and message it refused it with."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    apps = client.AppsV1Api(api)
    name = f"probe-{int(time.monotonic() * 1000) % 10**8}"
    try:
        apps.create_namespaced_deployment(namespace, _bare(name, image), **({"dry_run": "All"} if dry_run else {}))
    except ApiException as e:
        try:
            return e.status, str(json.loads(e.body)["message"])
        except (TypeError, ValueError, KeyError):
            return e.status, str(e.body or e.reason)
    if not dry_run:
        apps.delete_namespaced_deployment(name, namespace)
    return 201, ""


def _refusal(api: Any, image: str) -> str:
    """The message the controller refused a Deployment of `image` in ENFORCED with (400, from its webhook)."""
    status, message = _answer(api, image)
    assert status == 400, f"{image} in {ENFORCED}: {status} {message or 'admitted'}"
    assert message.startswith(DENIED), message
    return message


@pytest.fixture(scope="module")
def enforced(cluster, green, pipeline, tmp_path_factory) -> Iterator[Enforced]:
    """The controller installed and ready, green's promoted digest (and `latest`) copied with its proofs, the
    policies for the pipeline's key over the copy's repository, and the namespace ENFORCED labelled; torn
    down with the namespace (the controller goes with the session's cluster)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    assert admission.cached() is not None, ("policy-controller is not built on this machine: the test command's "
                                            "set-up builds it once (python3 build/pipeline.py test)")
    api = cluster.admin()
    work = tmp_path_factory.mktemp("admission")
    seconds = policycontroller.install(api, admission.stock(cluster.registry))
    print(f"policy-controller ready in {seconds:.1f} s")
    repo, digest = f"{cluster.registry}/{REPO}", green[1]["image"].split("@")[1]
    runner.run(cmdline.cosign_copy(sigstore.cosign(), green[1]["image"], f"{repo}:latest", registry=PLAIN),
               timeout=600, env=cmdline.cosign_env(registry=PLAIN))
    key = cosigning.pipeline_key(pipeline.state)
    statements, why = cosigning.attestations(key.public, f"{repo}@{digest}", cosigning.VERIFICATION_TYPE, PLAIN,
                                             work, stage="test")
    assert len(statements) == 1, f"promote's verification attestation, copied with the digest: {why}"
    printed = pipeline.run("deployment", f"{repo}@{digest}", "--no-provision", env=cluster.env())
    assert printed.returncode == 0, printed.stderr
    (deployment,) = [i for i in yaml.safe_load(printed.stdout)["items"] if i["kind"] == "Deployment"]
    unsigned = _tiny(repo, "unsigned", work)
    policycontroller.apply_policy(api, key.public.read_text(), f"{repo}**")
    core = client.CoreV1Api(api)
    try:
        policycontroller.enforce(api, ENFORCED)
        core.create_namespaced_secret(ENFORCED, {"metadata": {"name": "todo-backend-env"}, "stringData": {
            "DATABASE_URL": "postgresql://app@127.0.0.1:1/app", "BETTER_AUTH_SECRET": "s" * 40,
            "OPENAI_API_KEY": "sk-test-admission", **MCP_ENV}})
        # the webhook reads the compiled policies from its informer: enforced once an unsigned image is refused
        # for a policy of ours (before that, as an image no policy matches)
        assert wait_for(lambda: SIGNED in _answer(api, unsigned, dry_run=True)[1], timeout=90), \
            _answer(api, unsigned, dry_run=True)
        yield Enforced(api, repo, f"{repo}@{digest}", unsigned, key, statements[0]["predicate"], deployment, work)
    finally:
        with contextlib.suppress(ApiException):  # not there when enforcing it failed
            core.delete_namespace(ENFORCED)


def _deploy_until_ready(enforced: Enforced, name: str, image: str) -> Any:
    """The printed Deployment, renamed and given `image`, created in ENFORCED and waited for until Ready;
    returns the Deployment as stored (after the controller's mutation). Deleted afterwards."""
    from kubernetes import client

    apps = client.AppsV1Api(enforced.api)
    dep = copy.deepcopy(enforced.deployment)
    labels = {"app.kubernetes.io/name": name}
    dep["metadata"] = {"name": name, "labels": labels}
    dep["spec"]["selector"] = {"matchLabels": labels}
    dep["spec"]["template"]["metadata"] = {"labels": labels}
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = image
    apps.create_namespaced_deployment(ENFORCED, dep)
    try:
        def ready() -> bool:
            return (apps.read_namespaced_deployment(name, ENFORCED).status.ready_replicas or 0) == 1

        assert wait_for(ready, timeout=180), apps.read_namespaced_deployment(name, ENFORCED).status
        return apps.read_namespaced_deployment(name, ENFORCED)
    finally:
        apps.delete_namespaced_deployment(name, ENFORCED)


def test_a_digest_the_pipeline_promoted_is_admitted_and_becomes_ready(enforced):
    stored = _deploy_until_ready(enforced, "todo-backend-digest", enforced.promoted)
    assert stored.spec.template.spec.containers[0].image == enforced.promoted


def test_latest_is_resolved_to_the_promoted_digest_admitted_and_ready(enforced):
    """The controller's mutating webhook pins a tag to the digest it verified (the tag kept, for reading)."""
    stored = _deploy_until_ready(enforced, "todo-backend-latest", f"{enforced.repo}:latest")
    digest = enforced.promoted.split("@")[1]
    assert stored.spec.template.spec.containers[0].image == f"{enforced.repo}:latest@{digest}"


def test_an_unsigned_image_of_the_same_repository_is_refused(enforced):
    message = _refusal(enforced.api, enforced.unsigned)
    assert SIGNED in message and VERIFIED in message, message
    assert f"signature key validation failed for authority imagepipe-key for {enforced.unsigned}: " \
           "no signatures found" in message, message
    assert "no matching attestations" in message, message


def test_an_image_signed_by_another_key_is_refused(enforced):
    """Signed and attested (every check passed) exactly as promote does, but by a key the policy does not name."""
    other_dir = enforced.work / "other-key"
    other_dir.mkdir()
    runner.run(cmdline.cosign_generate_key_pair(sigstore.cosign(), other_dir), env=cmdline.cosign_env(password=""))
    private, public = cmdline.cosign_key_pair(other_dir)
    other = cosigning.CosignKey(str(private), public)
    image = _tiny(enforced.repo, "other-key", enforced.work)
    cosigning.sign(other, image, PLAIN)
    cosigning.attest(other, image, cosigning.VERIFICATION_TYPE, enforced.verification, PLAIN, enforced.work / "o")
    message = _refusal(enforced.api, image)
    assert SIGNED in message and "no matching signatures" in message, message
    assert VERIFIED in message and "no matching attestations" in message, message


def test_an_image_whose_verification_attestation_records_a_failed_check_is_refused(enforced):
    """Signed by our key, with promote's verification predicate but one check recorded as failed (as a verify
    that failed would have it): the signature passes, the Rego policy refuses, naming the check."""
    image = _tiny(enforced.repo, "failed-check", enforced.work)
    predicate = copy.deepcopy(enforced.verification)
    failing = predicate["checks"][0]["id"]
    predicate["checks"][0]["result"] = "fail"
    predicate["passed"] = False
    cosigning.sign(enforced.key, image, PLAIN)
    cosigning.attest(enforced.key, image, cosigning.VERIFICATION_TYPE, predicate, PLAIN, enforced.work / "f")
    message = _refusal(enforced.api, image)
    assert SIGNED not in message, f"the signature by our key passes: {message}"
    assert VERIFIED in message, message
    assert "the verification attestation does not record every check passed (passed: false, failed: " \
           f'["{failing}"])' in message, message


def test_an_image_signed_without_a_verification_attestation_is_refused(enforced):
    """Signed by our key and attested, but with an SBOM only: the signature passes, the verification is missing."""
    image = _tiny(enforced.repo, "no-verification", enforced.work)
    cosigning.sign(enforced.key, image, PLAIN)
    sbom = {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}
    cosigning.attest(enforced.key, image, cosigning.SBOM_TYPE, sbom, PLAIN, enforced.work / "n")
    message = _refusal(enforced.api, image)
    assert SIGNED not in message, f"the signature by our key passes: {message}"
    assert VERIFIED in message, message
    assert f"no matching attestations with type {cosigning.VERIFICATION_TYPE}" in message, message
    assert cosigning.SBOM_TYPE in message, "the types it found are named"


def test_a_namespace_without_the_label_is_not_enforced(enforced):
    """The pipeline's Deployment proof (kubeproof) runs its verified digest before promote signs it: in the
    CI namespace, which is not enforced, an unsigned image is admitted (dry run: nothing is made)."""
    assert _answer(enforced.api, enforced.unsigned, namespace=NAMESPACE, dry_run=True) == (201, "")
