"""The kaniko runs without binaries: the podman argv of a local run (manifest args, rewrites, security
context, mounts), the Job a cluster run submits, and how the cluster path reads the Kubernetes API's answers
(a local HTTP server answers as the API server would; the official client talks to it)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from imagepipe.builders import kaniko, kanikojob, kubejob
from imagepipe.errors import PipelineError
from imagepipe.hostenv import HostProfile

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
    args = executor_args(local())
    original = kanikojob.executor_args(JOB)
    assert args[:len(original)] != original
    changed = {a.split("=", 1)[0] for a, b in zip(original, args, strict=False) if a != b}
    assert changed == set(kanikojob.REWRITABLE)
    assert "--destination=127.0.0.1:5000/todo-backend:abc-kaniko" in args
    assert "--context=dir:///workspace/context" in args
    # local-only flags for the loopback registry come after the manifest's own
    assert args[len(original):] == kanikojob.loopback_registry_flags("127.0.0.1:5000")


def test_remote_registry_gets_no_loopback_flags_and_no_host_network():
    argv = local("registry.example.com")
    assert executor_args(argv) == kanikojob.rewrite(kanikojob.executor_args(JOB), {
        "--context": "dir:///workspace/context", "--dockerfile": "/workspace/Containerfile",
        "--destination": "registry.example.com/todo-backend:abc-kaniko",
        "--cache-repo": "registry.example.com/todo-backend/cache"})
    assert "--network" not in argv


def test_local_run_uses_the_manifests_security_context():
    argv = local()
    sec = kanikojob.security(JOB)
    assert sec.drop_all and sec.no_new_privileges and not sec.privileged
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    added = [argv[i + 1] for i, a in enumerate(argv) if a == "--cap-add"]
    assert added == list(sec.cap_add) and "SYS_ADMIN" not in added
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
    config = json.loads(kaniko.docker_config("reg.example.com", "ci:s3cret"))
    assert config == {"auths": {"reg.example.com": {"auth": "Y2k6czNjcmV0"}}}


def test_job_for_a_cluster_changes_name_args_labels_and_source_only():
    args = kanikojob.rewrite(kanikojob.executor_args(JOB), {"--destination": "reg.example.com/t:x"})
    job = kanikojob.job_for(JOB, name="todo-backend-kaniko-r1", args=args, git_url="https://git.example.com/a.git",
                            git_ref="main", labels={"io.imagepipe.run": "r1"})
    assert job["metadata"]["name"] == "todo-backend-kaniko-r1"
    assert job["metadata"]["labels"]["io.imagepipe.run"] == "r1"
    assert kanikojob.executor_args(job) == args
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["initContainers"][0]["env"]}
    assert env == {"GIT_URL": "https://git.example.com/a.git", "GIT_REF": "main"}
    assert kanikojob.load() == JOB, "the manifest itself is untouched"
    assert job["spec"]["template"]["spec"]["containers"][0]["securityContext"] == \
        JOB["spec"]["template"]["spec"]["containers"][0]["securityContext"]


# --- the cluster path against a local server answering as the Kubernetes API does ----------------------


class FakeCluster(BaseHTTPRequestHandler):
    jobs: list[dict] = []
    deleted: list[str] = []
    exit_code = 0
    message = DIGEST

    def log_message(self, *args):
        pass

    def reply(self, body, status=200, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def pod(self):
        state = {"terminated": {"exitCode": self.exit_code, "message": self.message,
                                "reason": "Completed" if self.exit_code == 0 else "Error"}}
        return {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "job-pod-1", "namespace": "ci"},
                "status": {"phase": "Succeeded", "containerStatuses": [
                    {"name": "kaniko", "state": state, "ready": False, "restartCount": 0, "image": "k",
                     "imageID": ""}]}}

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/apis/batch/v1/namespaces/ci/jobs"
        type(self).jobs.append(body)
        self.reply(body, 201)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/api/v1/namespaces/ci/pods":
            selector = parse_qs(url.query)["labelSelector"][0]
            assert selector == f"job-name={self.jobs[-1]['metadata']['name']}"
            self.reply({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [self.pod()]})
        elif url.path == "/api/v1/namespaces/ci/pods/job-pod-1/log":
            assert parse_qs(url.query)["container"] == ["kaniko"]
            self.reply(b"INFO Building stage builder\nINFO Pushed image\n", content_type="text/plain")
        elif url.path == "/api/v1/namespaces/ci/pods/job-pod-1":
            self.reply(self.pod())
        else:
            self.reply({"kind": "Status", "status": "Failure", "message": "not found", "code": 404}, 404)

    def do_DELETE(self):
        type(self).deleted.append(urlparse(self.path).path)
        self.reply({"kind": "Status", "status": "Success"})


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    FakeCluster.jobs, FakeCluster.deleted, FakeCluster.exit_code, FakeCluster.message = [], [], 0, DIGEST
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeCluster)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "test", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "ci", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "ci-cluster", "context": {"cluster": "test", "user": "ci"}},
                     {"name": "other", "context": {"cluster": "nowhere", "user": "ci"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(kubejob, "POLL_SECONDS", 0.01)
    yield FakeCluster
    server.shutdown()


def submitted_job():
    args = kanikojob.rewrite(kanikojob.executor_args(JOB), {"--destination": "reg.example.com/todo-backend:x"})
    return kanikojob.job_for(JOB, name="todo-backend-kaniko-r1", args=args, git_url="https://git.example.com/a.git",
                             git_ref="main", labels={"io.imagepipe.run": "r1"})


def test_cluster_run_submits_the_job_follows_logs_and_reads_the_digest(cluster):
    lines = []
    digest = kubejob.run_job("ci-cluster", "ci", submitted_job(), on_log=lines.append, timeout=10)
    assert digest == DIGEST
    assert lines == ["INFO Building stage builder", "INFO Pushed image"]
    sent = cluster.jobs[0]
    assert sent["metadata"]["name"] == "todo-backend-kaniko-r1"
    assert "--destination=reg.example.com/todo-backend:x" in kanikojob.executor_args(sent)
    assert cluster.deleted == [], "a successful Job is left to its ttlSecondsAfterFinished"


def test_cluster_run_failure_is_one_line_and_the_job_is_deleted(cluster):
    cluster.exit_code, cluster.message = 1, "error building image: failed to get filesystem from image"
    with pytest.raises(PipelineError, match=r"kaniko Job todo-backend-kaniko-r1 failed \(exit 1, Error\)"):
        kubejob.run_job("ci-cluster", "ci", submitted_job(), on_log=lambda _line: None, timeout=10)
    assert cluster.deleted == ["/apis/batch/v1/namespaces/ci/jobs/todo-backend-kaniko-r1"]


def test_cluster_run_without_a_digest_in_the_termination_message_fails(cluster):
    cluster.message = ""
    with pytest.raises(PipelineError, match="no digest"):
        kubejob.run_job("ci-cluster", "ci", submitted_job(), on_log=lambda _line: None, timeout=10)


def test_unknown_kube_context_is_one_line(cluster):
    with pytest.raises(PipelineError, match="cannot use Kubernetes context 'nope'"):
        kubejob.run_job("nope", "ci", submitted_job(), timeout=1)
