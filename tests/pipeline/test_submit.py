"""`pipeline.py submit`: ci/pipeline-job.yaml filled in for one run (no cluster), the options the pod is
given, what submit refuses in one line, the report carried through the pod's log, and the objects a pipeline
in a pod owns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import yaml
from k8s_models import round_trip

from imagepipe.builders import kubejob, pipelinejob
from imagepipe.cli.arguments import parse_args
from imagepipe.cli.verbs import submit
from imagepipe.errors import UsageError
from imagepipe.paths import ROOT
from imagepipe.pipeline import report
from imagepipe.pipeline.options import from_namespace


def placeholders_left(job: dict[str, Any]) -> list[str]:
    """Placeholders of the file still in the Job (none may be: each names a value the user must give)."""
    text = yaml.safe_dump(job)
    return [p for p in ("PIPELINE_IMAGE", "LOOKASIDE_URL", "git.example.com", "0000000000000000") if p in text]


SUBMISSION = pipelinejob.Submission(
    name="todo-backend-pipeline-abc123", image="reg.example:5000/imagepipe/pipeline@sha256:" + "1" * 64,
    git_url="https://git.example.org/team/todo.git", commit="c" * 40, registry="reg.example:5000",
    lookaside="http://imagepipe-lookaside.ci.svc.cluster.local", labels={"io.imagepipe.run": "abc123"},
    build_ca_secret="todo-backend-pipeline-abc123-ca", extra=("--repo", "todo-backend"))


def test_the_job_is_the_shipped_file_with_every_placeholder_filled():
    job = pipelinejob.job_for(pipelinejob.load(), SUBMISSION)
    _, back = round_trip(job, "V1Job")
    assert back == json.loads(json.dumps(job))  # still a valid Job, nothing misspelt
    assert placeholders_left(job) == []
    assert job["metadata"]["name"] == SUBMISSION.name
    assert job["metadata"]["labels"]["io.imagepipe.run"] == "abc123"
    assert job["spec"]["template"]["metadata"]["labels"]["io.imagepipe.run"] == "abc123"
    pod = job["spec"]["template"]["spec"]
    clone = {e["name"]: e.get("value") for e in pod["initContainers"][0]["env"]}
    assert clone["GIT_URL"] == SUBMISSION.git_url and clone["GIT_REF"] == SUBMISSION.commit
    (main,) = pod["containers"]
    assert main["image"] == SUBMISSION.image
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["GIT_URL"] == SUBMISSION.git_url and env[report.LOG_ENV] == "1"
    # the cosign key's password stays the Secret's: filling in the Job keeps the reference
    (password,) = [e for e in main["env"] if e["name"] == "COSIGN_PASSWORD"]
    assert password == {"name": "COSIGN_PASSWORD", "valueFrom": {"secretKeyRef": {
        "name": "imagepipe-signing", "key": "cosign.password", "optional": False}}}
    args = main["args"]
    assert args[args.index("--cosign-key") + 1] == "/etc/imagepipe/signing/cosign.key"
    assert args[args.index("--registry") + 1] == "reg.example:5000"
    assert args[args.index("--lookaside") + 1] == SUBMISSION.lookaside
    assert args[args.index("--build-ca") + 1] == "/etc/imagepipe/build-ca/ca.crt"
    assert args[-2:] == ["--repo", "todo-backend"]
    assert {"name": "build-ca", "secret": {"secretName": SUBMISSION.build_ca_secret}} in pod["volumes"]
    # the file itself is untouched
    assert pipelinejob.load() == yaml.safe_load(pipelinejob.MANIFEST.read_text())


def test_the_shipped_file_has_placeholders_a_user_must_fill():
    assert set(placeholders_left(pipelinejob.load())) == {
        "PIPELINE_IMAGE", "LOOKASIDE_URL", "git.example.com", "0000000000000000"}


@pytest.mark.parametrize(("argv", "line"), [
    (["submit", "--pipeline-image", "r/p@sha256:1", "--registry", "r:5000", "--lookaside", "http://l"],
     "submit runs the job in a cluster: pass --kube-context CONTEXT (of $KUBECONFIG)"),
    (["submit", "--kube-context", "c", "--registry", "r:5000", "--lookaside", "http://l"],
     "submit needs --pipeline-image REF: the image `python3 build/pipeline.py pipeline-image` pushed"),
    (["submit", "--kube-context", "c", "--pipeline-image", "p", "--lookaside", "http://l"],
     "submit needs --registry HOST[:PORT]: a registry the cluster reaches (the embedded one is this machine's)"),
    (["submit", "--kube-context", "c", "--pipeline-image", "p", "--registry", "r:5000"],
     "submit needs --lookaside URL: signatures must outlive the pod (ci/lookaside.yaml serves them)"),
    (["submit", "--kube-context", "in-cluster", "--pipeline-image", "p", "--registry", "r:5000", "--lookaside", "u"],
     "submit runs from outside the cluster: inside a pod, run the pipeline itself with --kube-context in-cluster"),
], ids=["no-context", "no-image", "no-registry", "no-lookaside", "in-cluster"])
def test_what_submit_cannot_run_is_one_usage_line(argv, line, monkeypatch):
    monkeypatch.delenv("IMAGEPIPE_VULN_DB", raising=False)
    with pytest.raises(UsageError) as e:
        submit.check(from_namespace(parse_args(argv)))
    assert str(e.value) == line


def test_the_pod_is_given_the_options_that_mean_the_same_there(monkeypatch):
    monkeypatch.setenv("IMAGEPIPE_VULN_DB", str(ROOT / "tests/fixtures/osv/pypa"))
    monkeypatch.setenv("IMAGEPIPE_VULN_DB_MAX_AGE", "30")
    a = from_namespace(parse_args([
        "submit", "--repo", "team/backend", "--kaniko-image", "k:1", "--registry-mirror", "m:5000",
        "--insecure-registry", "m:5000", "--tag", "v1", "--job-deadline", "900", "--state-dir", "/tmp/x",
        "--report", "r.json"]))
    assert submit.forwarded(a) == [
        "--repo", "team/backend", "--kaniko-image", "k:1", "--registry-mirror", "m:5000", "--job-deadline", "900",
        "--insecure-registry", "m:5000", "--tag", "v1", "--vuln-db", "tests/fixtures/osv/pypa",
        "--vuln-db-max-age", "30"]


SUBMIT = ["submit", "--kube-context", "c", "--pipeline-image", "p", "--registry", "r:5000", "--lookaside", "http://l"]


def refusal(path) -> str:
    return (f"--vuln-db {path} (or IMAGEPIPE_VULN_DB) is not in commit HEAD, so the pipeline's pod cannot read it: "
            "commit it and give its path in this checkout, or give no --vuln-db and no IMAGEPIPE_VULN_DB so the "
            "pod asks the OSV API (no volume is mounted for it)")


@pytest.mark.parametrize("where", ["outside", "untracked"])
def test_an_advisory_database_the_pod_cannot_read_is_refused_in_one_line(where, tmp_path, monkeypatch):
    monkeypatch.delenv("IMAGEPIPE_VULN_DB", raising=False)
    if where == "outside":
        db = tmp_path / "osv"
    else:  # inside the checkout, but in no commit (.state is ignored)
        db = ROOT / ".state" / f"osv-{tmp_path.name}"
    db.mkdir(parents=True)
    try:
        with pytest.raises(UsageError) as e:
            submit.check(from_namespace(parse_args([*SUBMIT, "--vuln-db", str(db)])))
    finally:
        db.rmdir()
    assert str(e.value) == refusal(db)


def test_submit_stops_at_once_before_any_cluster_is_asked(tmp_path):
    """The whole command: exit 2 and the one line, with a context that names no cluster (none is reached)."""
    env = {k: v for k, v in os.environ.items() if k != "IMAGEPIPE_VULN_DB"}
    proc = subprocess.run([sys.executable, str(ROOT / "build/pipeline.py"), *SUBMIT, "--vuln-db", str(tmp_path),
                           "--state-dir", str(tmp_path / "state")], capture_output=True, text=True, timeout=120,
                          env={**env, "KUBECONFIG": str(tmp_path / "no-kubeconfig")})
    assert proc.returncode == 2
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()] == [f"error: [submit] {refusal(tmp_path)}"]


def test_an_advisory_database_in_the_commit_travels_as_its_path_there(monkeypatch):
    monkeypatch.delenv("IMAGEPIPE_VULN_DB", raising=False)
    a = from_namespace(parse_args([*SUBMIT, "--vuln-db", str(ROOT / "tests/fixtures/osv/debian")]))
    submit.check(a)
    given = submit.forwarded(a)
    assert given[given.index("--vuln-db") + 1] == "tests/fixtures/osv/debian"


def test_the_debian_index_and_osv_api_settings_reach_the_pods_environment(monkeypatch):
    monkeypatch.setenv("IMAGEPIPE_DEBIAN_SECURITY_INDEX", "http://mirror.example:8080/{arch}")
    monkeypatch.delenv("IMAGEPIPE_OSV_API", raising=False)
    assert submit.forwarded_env() == (("IMAGEPIPE_DEBIAN_SECURITY_INDEX", "http://mirror.example:8080/{arch}"),)
    job = pipelinejob.job_for(pipelinejob.load(), pipelinejob.Submission(
        **{**SUBMISSION.__dict__, "env": submit.forwarded_env()}))
    (main,) = job["spec"]["template"]["spec"]["containers"]
    assert {"name": "IMAGEPIPE_DEBIAN_SECURITY_INDEX", "value": "http://mirror.example:8080/{arch}"} in main["env"]


def test_a_shared_kaniko_cache_repository_is_forwarded_and_a_bad_name_refused(monkeypatch):
    monkeypatch.delenv("IMAGEPIPE_VULN_DB", raising=False)
    given = submit.forwarded(from_namespace(parse_args([*SUBMIT, "--cache-repo", "team/kaniko-cache"])))
    assert given[given.index("--cache-repo") + 1] == "team/kaniko-cache"
    with pytest.raises(UsageError) as e:
        from_namespace(parse_args(["build", "--cache-repo", "Team Cache"]))
    assert str(e.value) == ("invalid --cache-repo 'Team Cache': use lowercase letters, digits and . _ - / "
                            "(e.g. --cache-repo todo-backend/cache)")


def test_the_pip_cache_claim_is_forwarded_to_the_pod(monkeypatch):
    monkeypatch.delenv("IMAGEPIPE_VULN_DB", raising=False)
    a = from_namespace(parse_args(["submit", "--kube-context", "c", "--pip-cache", "team-pip-cache"]))
    given = submit.forwarded(a)
    assert given[given.index("--pip-cache") + 1] == "team-pip-cache" and given.count("--pip-cache") == 1


@pytest.mark.parametrize(("argv", "line"), [
    (["--kube-context", "c", "--pip-cache", "Pip_Cache"],
     "invalid --pip-cache 'Pip_Cache': give the name of a PersistentVolumeClaim in the namespace (lower-case "
     "letters, digits and -)"),
    (["--pip-cache", "pip-cache"],
     "--pip-cache is the cluster Job's: give --kube-context too (a local build uses the host's wheelhouse: "
     "--offline)"),
], ids=["bad-name", "no-cluster"])
def test_a_pip_cache_that_cannot_serve_is_one_usage_line(argv, line, monkeypatch):
    monkeypatch.delenv("IMAGEPIPE_VULN_DB", raising=False)
    with pytest.raises(UsageError) as e:
        from_namespace(parse_args(argv))
    assert str(e.value) == line


def test_the_report_and_junit_come_back_through_the_log():
    data = {"passed": True, "image": "r/x@sha256:" + "2" * 64, "checks": []}
    junit = '<?xml version="1.0"?><testsuite tests="0"/>'
    import base64

    lines = ["==> verify: …", report.REPORT_MARK + json.dumps(data),
             report.JUNIT_MARK + base64.b64encode(junit.encode()).decode()]
    assert report.from_log(lines) == (data, junit)
    assert report.from_log(["error: [build] no report"]) == (None, None)


def test_what_a_pipeline_in_a_pod_creates_is_owned_by_its_pod(monkeypatch):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"a": "b"}}}
    assert kubejob.owned(secret, "ci") == secret  # not in a pod
    monkeypatch.setenv("IMAGEPIPE_POD_NAME", "todo-backend-pipeline-x-abcde")
    monkeypatch.setenv("IMAGEPIPE_POD_UID", "0b5e7c1e-0000-4000-8000-000000000001")
    monkeypatch.setenv("IMAGEPIPE_POD_NAMESPACE", "ci")
    owned = kubejob.owned(secret, "ci")
    assert owned["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod",
                                                     "name": "todo-backend-pipeline-x-abcde",
                                                     "uid": "0b5e7c1e-0000-4000-8000-000000000001"}]
    assert owned["metadata"]["labels"] == {"a": "b"} and "ownerReferences" not in secret["metadata"]
    # an owner in another namespace counts as gone for the garbage collector: none is set
    assert kubejob.owned(secret, "elsewhere") == secret


def test_in_the_pipeline_image_an_insecure_registry_is_declared_for_its_own_tools(tmp_path):
    from imagepipe.registry import hostconfig

    drop_in = tmp_path / "registries.conf.d/90-imagepipe-insecure.conf"
    hostconfig.declare_insecure(("10.0.0.5:5000", "mirror:5000"), drop_in)
    assert hostconfig.insecure_registries([drop_in]) == {"10.0.0.5:5000", "mirror:5000"}


def test_a_checkout_another_user_made_is_one_line_naming_safe_directory(tmp_path, monkeypatch):
    """A pod's clone step runs as another user than the pipeline: git refuses such a checkout."""
    import os
    import subprocess

    from imagepipe.host import git

    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    for path in [repo, *repo.rglob("*")]:
        os.lchown(path, 65532, 65532)
    monkeypatch.setattr(git, "ROOT", repo)
    monkeypatch.delenv("GIT_CONFIG_COUNT", raising=False)
    with pytest.raises(UsageError) as e:
        git.job_source("https://git.example.org/x.git")
    assert str(e.value) == (f"git refuses the checkout {repo}: another user owns it; mark it safe (git config "
                            f"--global --add safe.directory {repo}, or GIT_CONFIG_* in the environment)")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "safe.directory")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", str(repo))
    url, commit = git.job_source("https://git.example.org/x.git")  # what ci/pipeline-job.yaml sets
    assert url == "https://git.example.org/x.git" and len(commit) == 40


def test_the_bench_prints_the_whole_job_in_the_cluster_beside_the_host_driven_run():
    from imagepipe.benchmark.figures import whole_job_metrics

    assert whole_job_metrics({}) == []  # no cluster here: no rows, not zeros
    cold, code = whole_job_metrics({"pod_cold_s": 180.2, "host_cold_s": 150.1, "pod_code_only_s": 120.0,
                                    "host_code_only_s": 100.0})
    assert (cold.ours, cold.baseline, cold.ratio) == (180.2, 150.1, "1.20")
    assert (code.ours, code.baseline, code.ratio) == (120.0, 100.0, "1.20")
    assert "host-driven" in cold.note and "code-only" in code.name


def test_a_cluster_bench_that_fails_is_a_row_naming_its_cause_and_the_other_figures_stay():
    from imagepipe.benchmark.figures import cluster_metrics, whole_job_metrics

    (row,) = cluster_metrics({"cluster": {"error": "bench: pipeline-image did not finish within 3600 s: …"}})
    assert row.met is False and row.note == "not measured: bench: pipeline-image did not finish within 3600 s: …"
    (whole,) = whole_job_metrics({}, "bench: submit failed (exit 3): no node can pull it")
    assert whole.met is False and whole.note.endswith("no node can pull it")


def test_the_bench_prints_the_warm_pip_cache_cold_job_against_local_kanikos_cold():
    from imagepipe.benchmark.figures import pip_cache_metrics

    c = {"job_pipcache_fill": {"total": 90.0}, "job_cold_pipcache": {"total": 44.0}}
    (row,) = pip_cache_metrics(c, {"cold_build_s": 34.0})
    assert (row.ours, row.baseline, row.target, row.met) == (44.0, 34.0, "<= 1.3x", True)
    assert "filling it took 90.0 s" in row.note
    (slow,) = pip_cache_metrics({**c, "job_cold_pipcache": {"total": 45.0}}, {"cold_build_s": 34.0})
    assert slow.met is False
    assert pip_cache_metrics({}, {"cold_build_s": 34.0}) == []  # figures from before the row: none printed


def test_a_secret_item_the_pipelines_env_names_missing_is_one_line_at_once():
    """A Secret made before cosign (key.asc only): the kubelet cannot make the pipeline container's
    COSIGN_PASSWORD and retries for ever; submit says so instead of waiting out the Job's deadline."""
    from types import SimpleNamespace as NS

    from imagepipe.builders import kubewatch

    message = "couldn't find key cosign.password in Secret ci/imagepipe-signing"
    waiting = NS(reason="CreateContainerConfigError", message=message)
    pod = NS(metadata=NS(name="todo-backend-pipeline-abc123-x7k2q"), status=NS(
        conditions=[], init_container_statuses=[NS(name="clone", image="alpine/git", state=NS(
            waiting=None, terminated=NS(exit_code=0)))],
        container_statuses=[NS(name="pipeline", image="p", state=NS(waiting=waiting, terminated=None))]))
    failure = kubewatch.pod_failure(NS(namespace="ci"), pod)
    assert failure is not None and failure.message == (
        "the pod todo-backend-pipeline-abc123-x7k2q cannot start its container pipeline (CreateContainerConfigError: "
        f"{message}); fix what it names (kubectl -n ci describe pod todo-backend-pipeline-abc123-x7k2q)")
    waiting.message = "failed to sync secret cache: timed out waiting for the condition"  # the kubelet's, passing
    assert kubewatch.pod_failure(NS(namespace="ci"), pod) is None
    waiting.reason, waiting.message = "ContainerCreating", None  # the ordinary wait is no failure
    assert kubewatch.pod_failure(NS(namespace="ci"), pod) is None
