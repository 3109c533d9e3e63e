"""policy-controller's install as shipped (ci/policy-controller) and the admission policy (ci/admission-policy.yaml):
the objects upstream's config/ makes, with the image and TUF adapted, the policies filled with a key and a glob,
`public-key GLOB` printing them, and the install's refusals as one line each (no cluster: the API faked)."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import pytest
import yaml

from imagepipe.cli.verbs import publickey
from imagepipe.cluster import policycontroller
from imagepipe.errors import PipelineError, UsageError
from imagepipe.supplychain import admissionpolicy, verification
from imagepipe.ui import output

PEM = ("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAExB6+H6054/W1SJgs5JR6AJr6J35J\n"
       "RCTfQ5s1kD+hGMSE1rH7s46hmXEeyhnlRnaGF8eMU/SBJE/2NKPnxE7WzQ==\n-----END PUBLIC KEY-----\n")
IMAGE = "10.244.3.1:5000/imagepipe/policy-controller-webhook:v0.13.1-abc"


def test_the_install_is_upstreams_objects_in_cosign_system():
    docs = policycontroller.manifests(IMAGE)
    kinds = Counter(d["kind"] for d in docs)
    assert kinds == {"Namespace": 1, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1,
                     "RoleBinding": 1, "CustomResourceDefinition": 2, "Service": 1,
                     "ValidatingWebhookConfiguration": 2, "MutatingWebhookConfiguration": 2, "Secret": 1,
                     "ConfigMap": 3, "Deployment": 1}
    assert docs[0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "cosign-system", "labels": {"policy.sigstore.dev/include": "false"}}}, "created first, never enforced"
    assert {d["metadata"]["namespace"] for d in docs if "namespace" in d["metadata"]} == {"cosign-system"}
    hooks = {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"].endswith("WebhookConfiguration")}
    assert hooks == {(k, n) for k, names in (("ValidatingWebhookConfiguration", policycontroller.VALIDATING),
                                             ("MutatingWebhookConfiguration", policycontroller.MUTATING))
                     for n in names}
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition"} == \
        set(policycontroller.CRDS)
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "webhook-certs" and "data" not in secret, "the controller makes its TLS"
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"} == {
        "config-image-policies", "config-sigstore-keys", "config-policy-controller"}


def test_the_deployment_runs_the_given_image_without_tuf_as_a_numeric_non_root_user():
    (dep,) = [d for d in policycontroller.manifests(IMAGE) if d["kind"] == "Deployment"]
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == IMAGE and container["args"] == ["--disable-tuf=true"]
    assert pod["serviceAccountName"] == "webhook"
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 65532
    assert context["readOnlyRootFilesystem"] is True and context["capabilities"] == {"drop": ["ALL"]}
    assert [v["name"] for v in pod["volumes"]] == ["homedir"], "no TUF root to mount"


def test_a_manifest_directory_without_the_image_placeholder_is_refused(tmp_path):
    (tmp_path / "700-webhook-deployment.yaml").write_text(yaml.safe_dump({
        "kind": "Deployment", "metadata": {"name": "webhook"},
        "spec": {"template": {"spec": {"containers": [{"name": "webhook", "image": "ghcr.io/x:1"}]}}}}))
    with pytest.raises(ValueError, match="one container whose image is POLICY_CONTROLLER_IMAGE, not 0"):
        policycontroller.manifests(IMAGE, source=tmp_path)


def test_the_policies_require_our_key_and_every_check_of_the_verification_attestation():
    signed, verified = admissionpolicy.documents(PEM, "ghcr.io/org/todo-backend**")
    assert [signed["metadata"]["name"], verified["metadata"]["name"]] == list(admissionpolicy.NAMES)
    for policy in (signed, verified):
        assert policy["kind"] == "ClusterImagePolicy" and policy["apiVersion"] == "policy.sigstore.dev/v1beta1"
        assert policy["spec"]["images"] == [{"glob": "ghcr.io/org/todo-backend**"}]
        (authority,) = policy["spec"]["authorities"]
        assert authority["key"] == {"hashAlgorithm": "sha256", "data": PEM}
        assert "ctlog" not in authority, "no transparency log: the pipeline writes none"
        assert "mode" not in policy["spec"], "enforce (upstream's default), not warn"
    assert "attestations" not in signed["spec"]["authorities"][0], "this one checks the image's signature"
    (attestation,) = verified["spec"]["authorities"][0]["attestations"]
    assert attestation["predicateType"] == verification.PREDICATE_TYPE
    rego = attestation["policy"]["data"]
    assert attestation["policy"]["type"] == "rego" and rego.startswith("package sigstore\n")
    assert 'input.predicate.passed == true' in rego and 'check.result == "pass"' in rego
    assert "isCompliant :=" in rego


@pytest.mark.parametrize(("key", "glob", "problem"), [
    (PEM, "ghcr.io/org/todo backend", "is not a policy-controller image glob"),
    (PEM, "ghcr.io/org/[a-z]", "is not a policy-controller image glob"),
    ("ssh-ed25519 AAAA", "r/x**", "is not one PEM public key"),
    (PEM + PEM, "r/x**", "is not one PEM public key"),
])
def test_a_glob_or_key_policy_controller_would_refuse_is_named(key, glob, problem):
    with pytest.raises(ValueError, match=problem):
        admissionpolicy.documents(key, glob)


def test_the_rendered_policy_is_the_documents_with_the_key_and_rego_as_blocks():
    text = admissionpolicy.render(PEM, "10.244.0.1:5000/todo-backend**")
    assert list(yaml.safe_load_all(text)) == admissionpolicy.documents(PEM, "10.244.0.1:5000/todo-backend**")
    assert "      data: |\n        -----BEGIN PUBLIC KEY-----\n" in text
    assert "        data: |\n          package sigstore\n" in text


def _ctx(tmp_path, *target: str) -> SimpleNamespace:
    """What the verb reads of its context, with the pipeline's own pair already in the state directory (so no
    cosign runs)."""
    (tmp_path / "cosign").mkdir(exist_ok=True)
    (tmp_path / "cosign/cosign.key").write_text("unused\n")
    (tmp_path / "cosign/cosign.pub").write_text(PEM)
    return SimpleNamespace(args=SimpleNamespace(target=list(target), signing=SimpleNamespace(cosign_key=None)),
                           state_dir=tmp_path)


@pytest.fixture
def plain_output():
    """The output module onto the captured stdout, and back onto the real one afterwards."""
    yield output.configure()
    output.configure()


def test_public_key_prints_the_key_or_with_a_glob_the_policy_for_kubectl(plain_output, tmp_path, capsys):
    output.configure()  # now that capsys holds stdout
    assert publickey.run(_ctx(tmp_path)) == 0
    assert capsys.readouterr().out == PEM
    assert publickey.run(_ctx(tmp_path, "ghcr.io/org/todo-backend**")) == 0
    out = capsys.readouterr().out
    assert out == admissionpolicy.render(PEM, "ghcr.io/org/todo-backend**"), "the policies alone on stdout"
    with pytest.raises(UsageError, match="is not a policy-controller image glob"):
        publickey.run(_ctx(tmp_path, "ghcr.io/org/todo backend"))
    with pytest.raises(UsageError, match="at most one image glob"):
        publickey.run(_ctx(tmp_path, "a/b**", "c/d**"))


class _Refused(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status, self.reason, self.body = status, reason, json.dumps({"message": message})


def test_existing_objects_are_left_and_a_refusal_is_one_line(monkeypatch):
    from kubernetes import utils

    created = []

    def create_from_dict(api, doc):
        if doc["kind"] == "Namespace":
            raise utils.FailToCreateError([_Refused(409, "Conflict", "already exists")])
        if doc["kind"] == "ClusterRole":
            raise utils.FailToCreateError([_Refused(403, "Forbidden", "clusterroles is forbidden:\nUser x")])
        created.append(doc["kind"])

    monkeypatch.setattr(utils, "create_from_dict", create_from_dict)
    docs = policycontroller.manifests(IMAGE)
    assert policycontroller.create(None, docs[:1] + docs[2:4]) == ["Namespace cosign-system"]
    with pytest.raises(PipelineError) as e:
        policycontroller.create(None, docs[:2])
    assert e.value.message == ("policy-controller: the cluster refused to create ClusterRole policy-controller-rbac "
                               "(403 Forbidden: clusterroles is forbidden: User x)")


def _hook(ca: bytes | None) -> SimpleNamespace:
    return SimpleNamespace(webhooks=[
        SimpleNamespace(client_config=SimpleNamespace(ca_bundle=ca))])


def test_what_lacks_the_controllers_ca_is_named(monkeypatch):
    from kubernetes import client

    class Registration:
        def __init__(self, api):
            pass

        def read_validating_webhook_configuration(self, name):
            return _hook(b"ca")

        def read_mutating_webhook_configuration(self, name):
            return _hook(None if name == "policy.sigstore.dev" else b"ca")

    class Extensions:
        def __init__(self, api):
            pass

        def read_custom_resource_definition(self, name):
            webhook = SimpleNamespace(client_config=SimpleNamespace(ca_bundle=None))
            strategy = "Webhook" if name.startswith("clusterimagepolicies") else "None"
            return SimpleNamespace(spec=SimpleNamespace(conversion=SimpleNamespace(strategy=strategy, webhook=webhook)))

    monkeypatch.setattr(client, "AdmissionregistrationV1Api", Registration)
    monkeypatch.setattr(client, "ApiextensionsV1Api", Extensions)
    assert policycontroller.ca_missing(None) == ["MutatingWebhookConfiguration policy.sigstore.dev",
                                                 "CustomResourceDefinition clusterimagepolicies.policy.sigstore.dev"]


def test_a_run_in_an_enforced_namespace_is_told_to_use_one_that_is_not(tmp_path, monkeypatch):
    """The Deployment proof runs the digest before promote signs it (and the Job runs the unsigned executor):
    refused there, the line names the label and the fix, not just a 400."""
    from imagepipe.builders import kubejob

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "ci",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "ci", "context": {"cluster": "c", "user": "u"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    cluster = kubejob.Cluster("ci", "prod")
    denied = ('admission webhook "policy.sigstore.dev" denied the request: validation failed: failed policy: '
              "imagepipe-signed: spec.template.spec.containers[0].image")
    line = cluster.explain(_Refused(400, "Bad Request", denied), "create deployments").message
    assert line.startswith("namespace prod enforces sigstore's policy-controller (labelled "
                           "policy.sigstore.dev/include=true), which refused to create deployments (admission "
                           'webhook "policy.sigstore.dev" denied the request'), line
    assert line.endswith("so give --kube-namespace a namespace that is not enforced (docs/admission.md)"), line
    other = cluster.explain(_Refused(400, "Bad Request", "spec.replicas: Invalid value"), "create deployments")
    assert other.message == "the cluster refused to create deployments: 400 Bad Request (spec.replicas: Invalid value)"


def test_a_policy_the_api_server_cannot_have_checked_by_the_webhook_names_the_flag(monkeypatch):
    """Without kube-proxy, a webhook Service answers only at its endpoints: the refusal says what that needs."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    class Custom:
        def __init__(self, api):
            pass

        def create_cluster_custom_object(self, group, version, plural, body):
            e = ApiException(status=500, reason="Internal Server Error")
            e.body = json.dumps({"message": 'Internal error occurred: failed calling webhook "defaulting.'
                                            'clusterimagepolicy.sigstore.dev": dial tcp 10.96.0.7:443: connect: '
                                            "connection refused"})
            raise e

    monkeypatch.setattr(client, "CustomObjectsApi", Custom)
    with pytest.raises(PipelineError) as e:
        policycontroller.apply_policy(None, PEM, "r:5000/x**")
    assert e.value.message == (
        "policy-controller: the cluster refused the ClusterImagePolicy imagepipe-signed (500 Internal Server Error: "
        'Internal error occurred: failed calling webhook "defaulting.clusterimagepolicy.sigstore.dev": dial tcp '
        "10.96.0.7:443: connect: connection refused (the API server reaches a webhook's Service without kube-proxy "
        "only with --enable-aggregator-routing=true))")
    with pytest.raises(PipelineError, match="is not a policy-controller image glob"):
        policycontroller.apply_policy(None, PEM, "r:5000/x y")
