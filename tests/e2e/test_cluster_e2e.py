"""The CI half on a real Kubernetes built here: `--kube-context` green end to end under ci/rbac.yaml's Role,
each failure mode ending in one line with the Job, its pods and the run's Secrets deleted, cancel and
concurrency, and a cluster whose teardown leaves nothing on the host."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from kube_support import NAMESPACE
from pipeline_support import registry_client
from test_cancel_e2e import Started

from imagepipe.supplychain import referrers

pytestmark = pytest.mark.e2e


def run(pipeline, kube, *extra: str, timeout: float = 1800):
    return pipeline.run(*kube.args(), *extra, timeout=timeout, env=kube.env())


def test_the_whole_job_on_the_cluster_is_green_signed_and_names_the_commit(pipeline, kube, tmp_path):
    proc = run(pipeline, kube, "--report", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is True and report["builder"] == "kaniko"
    job = report["cluster"]
    assert job["job"].startswith("todo-backend-kaniko-") and job["node"] == kube.facts.node
    assert set(job["images"]) == {"clone", "kaniko"} and all(job["images"].values())
    assert job["phases"]["total"] > 0
    image = report["image"]
    check = pipeline.run("attest", "verify", image, "--no-provision", env=kube.env())
    assert check.returncode == 0, check.stderr
    # the provenance names the commit the Job fetched: this one
    reg = registry_client(kube.registry, "todo-backend-k8s")
    digest = image.split("@")[1]
    _, listed = referrers.referrers(reg, digest)
    prov = next(m for m in listed if "slsa" in json.dumps(m) or "in-toto" in m.get("artifactType", ""))
    manifest = json.loads(reg.get_manifest(prov["digest"])[0])
    statement = json.loads(reg.get_blob(manifest["layers"][0]["digest"]))
    source = statement["predicate"]["buildDefinition"]["externalParameters"]["source"]
    assert source["digest"]["gitCommit"] == kube.commit
    assert kube.leftovers()["secrets"] == [], "the run's Secrets are deleted after a green Job"
    assert "\x1b[" not in proc.stdout, "the Job's log without colour codes"


def test_cluster_teardown_leaves_nothing_on_the_host(tmp_path):
    from imagepipe.cluster import binaries
    from imagepipe.cluster.local import LocalCluster

    if binaries.unavailable():
        pytest.skip(binaries.unavailable())
    cluster = LocalCluster(tmp_path / "c")
    facts = cluster.up()
    try:
        from kubernetes import client, config

        core = client.CoreV1Api(config.new_client_from_config(config_file=facts.kubeconfig, context=facts.context))
        core.create_namespaced_pod("default", {"metadata": {"name": "probe"}, "spec": {"containers": [
            {"name": "p", "image": f"{facts.registry}/imagepipe/pause:1"}]}})
        assert _wait(lambda: core.read_namespaced_pod("probe", "default").status.phase == "Running")
        during = _traces(facts, tmp_path)
    finally:
        assert cluster.down()
    for kind in ("links", "rules", "mounts", "cgroups", "procs"):
        assert during[kind], f"no {kind} seen while the cluster ran: {during}"
    assert during["registries_d"], "this host trusts its registry while it runs"
    assert _traces(facts, tmp_path) == {k: [] for k in during}, "nothing of the cluster is left on the host"


def _traces(facts, where: Path) -> dict[str, list[str]]:
    """What of this cluster is on the host: its bridge, iptables rules naming its network or subnet, mounts,
    cgroups and processes under its directory, its registries.conf.d entry."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout.splitlines()
    procs = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout.splitlines()
    prefix = facts.subnet.rsplit(".", 1)[0] + "."
    return {
        "links": [ln for ln in links.splitlines() if f" {facts.bridge}:" in ln or f"master {facts.bridge}" in ln],
        "rules": [r for r in rules if facts.network in r or f" {prefix}" in r],
        "mounts": [m for m in Path("/proc/self/mountinfo").read_text().splitlines() if str(where) in m],
        "cgroups": [str(p) for p in Path(facts.cgroup).parent.glob(Path(facts.cgroup).name)],
        "procs": [p for p in procs if str(where) in p],
        "registries_d": [str(p) for p in Path(facts.registries_conf).parent.glob(Path(facts.registries_conf).name)],
    }


def _wait(predicate, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001, S110 - not there yet
            pass
        time.sleep(0.5)
    return False


def run_id(out: str) -> str | None:
    found = re.search(r"Job todo-backend-kaniko-(\w+) in ", out)
    return found.group(1) if found else None


def one_line(proc, *needles: str) -> str:
    assert proc.returncode == 13, proc.stdout[-3000:] + proc.stderr
    line = proc.stderr.strip().splitlines()[0]
    assert line.startswith("error: [build] ") and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in line, line
    return line


def no_leftovers(kube, proc) -> None:
    rid = run_id(proc.stdout)
    if rid is not None:
        assert _wait(lambda: kube.leftovers(rid) == {"jobs": [], "pods": [], "secrets": []}, timeout=10), \
            kube.leftovers(rid)


def test_an_executor_the_nodes_cannot_pull(pipeline, kube):
    proc = run(pipeline, kube, "--kaniko-image", "kaniko.invalid/executor:1")
    one_line(proc, "the cluster cannot pull kaniko.invalid/executor:1", "--kaniko-image")
    assert run_id(proc.stdout), "the Job was submitted: this host could not check that registry"
    no_leftovers(kube, proc)


def test_an_executor_missing_from_its_registry_is_refused_before_the_job(pipeline, kube):
    proc = run(pipeline, kube, "--kaniko-image", f"{kube.registry}/nope/kaniko:0")
    one_line(proc, f"{kube.registry}/nope/kaniko:0 does not exist", "--kaniko-image")
    assert run_id(proc.stdout) is None, "nothing was submitted"


def test_a_commit_the_clone_cannot_fetch(pipeline, kube):
    proc = run(pipeline, kube, "--git-url", f"{kube.facts.git_url}/nope.git")
    one_line(proc, "the Job could not fetch commit", "nope.git", "--git-url")
    no_leftovers(kube, proc)


def test_the_deadline(pipeline, kube):
    proc = run(pipeline, kube, "--job-deadline", "6")
    one_line(proc, "activeDeadlineSeconds (6 s)", "--job-deadline")
    no_leftovers(kube, proc)


def test_a_missing_namespace(pipeline, kube):
    proc = pipeline.run(*kube.args(context=kube.facts.context), "--kube-namespace", "nope", env=kube.env())
    one_line(proc, "namespace nope does not exist", "--kube-namespace")


def test_an_unreachable_cluster(pipeline, kube, tmp_path):
    from imagepipe.cluster import configs
    from imagepipe.services.postgres import free_port

    config = tmp_path / "kubeconfig"
    config.write_text(configs.kubeconfig(name="gone", server=f"https://127.0.0.1:{free_port()}",
                                         ca=Path(kube.facts.dir) / "pki/ca.crt", user="u", token="t"))
    proc = pipeline.run(*kube.args(context="gone"), env={**kube.env(), "KUBECONFIG": str(config)})
    one_line(proc, "cannot be reached", "context")


def test_a_role_without_create_jobs_is_one_line_and_leaves_no_secret(pipeline, kube, tmp_path):
    import yaml
    from kubernetes import client

    from imagepipe.cluster import configs

    api = kube.admin()
    rbac, core = client.RbacAuthorizationV1Api(api), client.CoreV1Api(api)
    role = next(d for d in yaml.safe_load_all((Path(__file__).parents[2] / "ci/rbac.yaml").read_text())
                if d["kind"] == "Role")
    role["metadata"]["name"] = "no-create-jobs"
    role["rules"][0]["verbs"] = ["get", "delete"]
    rbac.create_namespaced_role(NAMESPACE, role)
    core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": "no-create-jobs"}})
    rbac.create_namespaced_role_binding(NAMESPACE, {
        "metadata": {"name": "no-create-jobs"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "no-create-jobs"},
        "subjects": [{"kind": "ServiceAccount", "name": "no-create-jobs"}]})
    token = core.create_namespaced_service_account_token("no-create-jobs", NAMESPACE, {"spec": {}}).status.token
    config = tmp_path / "kubeconfig"
    config.write_text(configs.kubeconfig(name="limited", server=kube.facts.server,
                                         ca=Path(kube.facts.dir) / "pki/ca.crt", user="limited", token=token,
                                         namespace=NAMESPACE))
    proc = pipeline.run(*kube.args(context="limited"), env={**kube.env(), "KUBECONFIG": str(config)})
    one_line(proc, "may not create jobs", "ci/rbac.yaml")
    no_leftovers(kube, proc)


def test_sigterm_during_the_job_deletes_it_within_10_s(pipeline, kube):
    started = Started(pipeline, *kube.args(), env=kube.env())
    started.wait_for_line("    | ")  # kaniko's log is streaming: the Job runs
    rid = run_id("".join(started.out))
    assert rid and kube.leftovers(rid)["jobs"]
    code, seconds, err = started.signal(signal.SIGTERM)
    assert code == 143, err
    assert seconds < 10, f"stopped in {seconds:.1f} s"
    assert kube.leftovers(rid) == {"jobs": [], "pods": [], "secrets": []}


def test_a_killed_runs_job_is_deleted_by_the_next_run(pipeline, kube):
    started = Started(pipeline, *kube.args(), env=kube.env())
    started.wait_for_line("    | ")
    rid = run_id("".join(started.out))
    started.proc.kill()
    started.proc.communicate(timeout=30)
    assert kube.leftovers(rid)["jobs"], "SIGKILL cannot be caught: the Job is left"
    proc = pipeline.run("lint", "--no-provision", env=kube.env())
    assert proc.returncode == 0, proc.stderr
    assert f"deleted Job todo-backend-kaniko-{rid} in {NAMESPACE} of interrupted run {rid}" in proc.stdout
    assert _wait(lambda: kube.leftovers(rid) == {"jobs": [], "pods": [], "secrets": []}, timeout=10)


def test_two_runs_at_once_get_two_jobs_and_both_pass(pipeline, kube, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    def one(repo: str):
        return pipeline.run(*kube.args(repo=repo), "--state-dir", str(tmp_path / repo), env=kube.env())

    with ThreadPoolExecutor(2) as pool:
        procs = list(pool.map(one, ("todo-backend-k8s-a", "todo-backend-k8s-b")))
    for proc in procs:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert run_id(procs[0].stdout) != run_id(procs[1].stdout)


def test_parity_across_the_cluster_gives_buildahs_tree(pipeline, kube, tmp_path):
    proc = pipeline.run("parity", *kube.args(), "--report", str(tmp_path / "p.json"), env=kube.env())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    report = json.loads((tmp_path / "p.json").read_text())
    assert [d for d in report["differences"] if d["kind"] == "tree"] == [], "the Job's tree is buildah's"
    assert report["counts"]["paths"] == report["counts"]["paths_kaniko"] > 1000


def test_a_failing_run_step_in_the_job(kube, tmp_path):
    from test_checkouts_e2e import Checkout

    clone = Checkout(tmp_path / "broken")
    containerfile = clone.root / "build/Containerfile"
    containerfile.write_text(containerfile.read_text().replace(
        "ARG WHEELHOUSE=none", "ARG WHEELHOUSE=none\nRUN echo a failing step && exit 3", 1))
    git = ["git", "-C", str(clone.root), "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run([*git, "commit", "-qam", "a failing step"], check=True)
    subprocess.run([*git, "push", "-q", str(Path(kube.facts.dir) / "git/todo.git"), "HEAD:refs/heads/broken"],
                   check=True)
    proc = subprocess.run([str(clone.root / ".venv/bin/python"), str(clone.root / "build/pipeline.py"),
                           *kube.args()], cwd=clone.root, capture_output=True, text=True, timeout=1800,
                          env=kube.env())
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    one_line(proc, "kaniko Job", "exit status 3")
    no_leftovers(kube, proc)


def test_a_registry_refusing_the_credentials(pipeline, kube, tmp_path):
    """Wrong --creds are refused before any Job is made (the run's one registry access checks them, as
    `podman login` would); wrong credentials only the Job has (--kube-secret) are refused by kaniko in the
    Job, reported in one line, and the Job and its pods deleted."""
    import base64
    import json

    import bcrypt
    from kubernetes import client

    from imagepipe.services.hostaccess import REGISTRIES_D

    addr = f"{kube.facts.node_ip}:5001"
    (tmp_path / "htpasswd").write_text("ci:" + bcrypt.hashpw(b"right-pass", bcrypt.gensalt(rounds=4)).decode() + "\n")
    (tmp_path / "config.yml").write_text(
        f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}/data\n"
        f"http:\n  addr: {addr}\nauth:\n  htpasswd:\n    realm: test\n    path: {tmp_path}/htpasswd\n")
    server = subprocess.Popen(["docker-registry", "serve", str(tmp_path / "config.yml")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conf = REGISTRIES_D / "61-imagepipe-test-auth.conf"
    conf.write_text(f'[[registry]]\nlocation = "{addr}"\ninsecure = true\n')
    core = client.CoreV1Api(kube.admin())
    wrong = base64.b64encode(b"ci:wrong-secret").decode()
    config = json.dumps({"auths": {addr: {"auth": wrong}}}).encode()
    core.create_namespaced_secret(NAMESPACE, client.V1Secret(
        metadata=client.V1ObjectMeta(name="imagepipe-test-wrong"), type="kubernetes.io/dockerconfigjson",
        data={".dockerconfigjson": base64.b64encode(config).decode()}))
    try:
        assert _wait(lambda: subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://{addr}/v2/"]).returncode == 0)
        args = kube.args()
        args[args.index("--registry") + 1] = addr
        early = pipeline.run(*args, "--insecure-registry", addr, "--creds", "ci:wrong-pass", env=kube.env())
        in_job = pipeline.run(*args, "--insecure-registry", addr, "--kube-secret", "imagepipe-test-wrong",
                              env=kube.env())
    finally:
        server.terminate()
        server.wait()
        conf.unlink()
        core.delete_namespaced_secret("imagepipe-test-wrong", NAMESPACE)
    one_line(early, "refused the credentials from --creds")
    assert "wrong-pass" not in early.stdout + early.stderr, "the password is never printed"
    assert "Job todo-backend-kaniko-" not in early.stdout, "no Job was submitted"
    no_leftovers(kube, early)
    one_line(in_job, "refused kaniko's credentials")
    no_leftovers(kube, in_job)
