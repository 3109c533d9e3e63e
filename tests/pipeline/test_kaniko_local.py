"""The kaniko runs without binaries: the podman argv of a local run (manifest args, rewrites, security
context, mounts), the Job a cluster run submits, and how the cluster path reads the Kubernetes API's answers
(a local HTTP server answers as the API server would; the official client talks to it)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from imagepipe.builders import kaniko, kanikojob, kubejob
from imagepipe.errors import PipelineError
from imagepipe.host.profile import HostProfile
from imagepipe.registry.auth import RegistryAuth

JOB = kanikojob.load()
PLAIN = HostProfile()
DIGEST = "sha256:" + "ab" * 32


def local(registry: str = "127.0.0.1:5000", **kw) -> list[str]:
    return kaniko.local_argv(PLAIN, executor="ghcr.io/osscontainertools/kaniko:v1.28.3", job=JOB,
                             context=Path("/src/backend"), containerfile=Path("/src/build/Containerfile"),
                             destination=f"{registry}/todo-backend:abc-kaniko",
                             cache_repo=f"{registry}/todo-backend/cache", registry=registry,
                             termination_log=Path("/state/kaniko/t.log"), name="imagepipe-kaniko-1",
                             labels={"io.imagepipe.run": "r1"}, **kw)


def executor_args(argv: list[str]) -> list[str]:
    return argv[argv.index("ghcr.io/osscontainertools/kaniko:v1.28.3") + 1:]


def test_local_run_keeps_every_manifest_flag_but_the_named_rewrites():
    assert executor_args(local()) == [
        "--context=dir:///workspace/context", "--dockerfile=/workspace/Containerfile",
        "--destination=127.0.0.1:5000/todo-backend:abc-kaniko", "--digest-file=/dev/termination-log",
        "--cache=true", "--cache-repo=127.0.0.1:5000/todo-backend/cache", "--snapshot-mode=full", "--reproducible",
        "--ignore-var-run=false", "--cleanup", "--push-retry=3", "--cache-copy-layers",
        # local-only flags for the loopback registry come after the manifest's own
        "--registry-mirror=127.0.0.1:5000", "--insecure", "--insecure-pull", "--skip-tls-verify-pull"]
    assert kanikojob.REWRITABLE == ("--context", "--dockerfile", "--destination", "--cache-repo")


def test_remote_registry_gets_no_loopback_flags_and_no_host_network():
    argv = local("registry.example.com")
    assert executor_args(argv) == [
        "--context=dir:///workspace/context", "--dockerfile=/workspace/Containerfile",
        "--destination=registry.example.com/todo-backend:abc-kaniko", "--digest-file=/dev/termination-log",
        "--cache=true", "--cache-repo=registry.example.com/todo-backend/cache", "--snapshot-mode=full",
        "--reproducible", "--ignore-var-run=false", "--cleanup", "--push-retry=3", "--cache-copy-layers"]
    assert "--network" not in argv


def test_local_run_uses_the_manifests_security_context():
    argv = local()
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    added = [argv[i + 1] for i, a in enumerate(argv) if a == "--cap-add"]
    assert added == ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "SETFCAP"], "ci/kaniko.yaml's six"
    assert "no-new-privileges" in argv and "--privileged" not in argv
    assert argv[argv.index("--user") + 1] == "0"


def test_local_run_mounts_context_read_only_and_the_termination_log():
    argv = local()
    volumes = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
    assert "/src/backend:/workspace/context:ro" in volumes
    assert "/state/kaniko/t.log:/dev/termination-log" in volumes  # the manifest's --digest-file, unchanged
    assert "--label" in argv and "io.imagepipe.run=r1" in argv


def test_rewrite_refuses_any_other_flag():
    with pytest.raises(ValueError, match="not rewritable"):
        kanikojob.rewrite(kanikojob.executor_args(JOB), {"--snapshot-mode": "redo"})


def test_docker_config_carries_the_credentials_for_that_registry():
    config = json.loads(RegistryAuth("reg.example.com", "ci", "s3cret", "--creds").auths_json())
    assert config == {"auths": {"reg.example.com": {"auth": "Y2k6czNjcmV0"}}}


SETTINGS = kanikojob.ClusterSettings(
    name="todo-backend-kaniko-r1", labels={"io.imagepipe.run": "r1"}, git_url="https://git.example.com/a.git",
    commit="0123456789abcdef0123456789abcdef01234567", destination="reg.example.com/todo-backend:x",
    cache_repo="reg.example.com/todo-backend/cache", registry_secret="imagepipe-r1-registry")


def test_job_for_a_cluster_changes_only_the_named_fields():
    job = kanikojob.job_for(JOB, SETTINGS)
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["name"] == "todo-backend-kaniko-r1"
    assert job["metadata"]["labels"]["io.imagepipe.run"] == "r1"
    assert job["spec"]["template"]["metadata"]["labels"]["io.imagepipe.run"] == "r1", "the pod carries it too"
    assert kanikojob.executor_args(job) == [
        "--context=dir:///workspace/repo/backend", "--dockerfile=/workspace/repo/build/Containerfile",
        "--destination=reg.example.com/todo-backend:x", "--digest-file=/dev/termination-log", "--cache=true",
        "--cache-repo=reg.example.com/todo-backend/cache", "--snapshot-mode=full", "--reproducible",
        "--ignore-var-run=false", "--cleanup", "--push-retry=3", "--cache-copy-layers"]
    env = {e["name"]: e["value"] for e in pod["initContainers"][0]["env"]}
    assert env["GIT_URL"] == "https://git.example.com/a.git"
    assert env["GIT_REF"] == SETTINGS.commit, "the exact commit, not a branch"
    assert next(v for v in pod["volumes"] if v["name"] == "registry-credentials")["secret"]["secretName"] == \
        "imagepipe-r1-registry"
    assert kanikojob.images(job) == {"clone": "alpine/git:v2.45.2",
                                     "kaniko": "ghcr.io/osscontainertools/kaniko:v1.28.3"}
    assert job["spec"]["activeDeadlineSeconds"] == JOB["spec"]["activeDeadlineSeconds"]
    assert kanikojob.load() == JOB, "the manifest itself is untouched"
    manifest_pod = JOB["spec"]["template"]["spec"]
    assert pod["containers"][0]["securityContext"] == manifest_pod["containers"][0]["securityContext"]


def test_job_for_a_cluster_with_every_option():
    s = kanikojob.ClusterSettings(**{
        **SETTINGS.__dict__, "executor": "m.example/kaniko:1", "git_image": "m.example/git:1", "mirror": "m.example",
        "insecure": ("m.example", "reg.example.com"), "ca_secret": "imagepipe-r1-ca", "deadline": 60})
    job = kanikojob.job_for(JOB, s)
    pod = job["spec"]["template"]["spec"]
    assert kanikojob.images(job) == {"clone": "m.example/git:1", "kaniko": "m.example/kaniko:1"}
    args = kanikojob.executor_args(job)
    assert args[-4:] == ["--registry-mirror=m.example", "--skip-default-registry-fallback",
                         "--insecure-registry=m.example", "--insecure-registry=reg.example.com"]
    assert {"name": "build-ca", "secret": {"secretName": "imagepipe-r1-ca"}} in pod["volumes"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "build-ca")
    assert mount == {"name": "build-ca", "mountPath": "/run/host-ca.crt", "subPath": "ca.crt", "readOnly": True}
    assert job["spec"]["activeDeadlineSeconds"] == 60


def test_the_runs_secrets():
    reg = kubejob.registry_secret("s", {"io.imagepipe.run": "r1"}, '{"auths": {}}')
    assert reg["type"] == "kubernetes.io/dockerconfigjson" and reg["metadata"]["labels"] == {"io.imagepipe.run": "r1"}
    assert json.loads(base64.b64decode(reg["data"][".dockerconfigjson"])) == {"auths": {}}
    ca = kubejob.ca_secret("c", {}, b"PEM")
    assert ca["type"] == "Opaque" and base64.b64decode(ca["data"]["ca.crt"]) == b"PEM"


def test_unknown_kube_context_is_one_line(tmp_path, monkeypatch):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "ci", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "other", "context": {"cluster": "test", "user": "ci"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with pytest.raises(PipelineError, match="cannot use Kubernetes context 'nope'"):
        kubejob.Cluster("nope", "ci")


def test_in_cluster_outside_a_pod_is_one_line(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(PipelineError, match="cannot use Kubernetes context 'in-cluster': .* not in a pod with a "
                                            "mounted ServiceAccount token"):
        kubejob.Cluster("in-cluster", "ci")
