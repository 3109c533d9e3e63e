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
from pipeline_support import registry_client, stop_processes_under
from support import MCP_ENV
from test_cancel_e2e import Started

from imagepipe.cluster import volumes
from imagepipe.supplychain import referrers

pytestmark = pytest.mark.e2e


def run(pipeline, kube, *extra: str, timeout: float = 1800):
    return pipeline.run(*kube.args(), *extra, timeout=timeout, env=kube.env())


@pytest.fixture(scope="module")
def k8s_green(pipeline, kube, tmp_path_factory):
    """One green run of the whole job on the cluster, shared by the tests that read it."""
    out = tmp_path_factory.mktemp("k8s-green")
    proc = run(pipeline, kube, "--report", str(out / "r.json"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    return proc, json.loads((out / "r.json").read_text())


def test_the_whole_job_on_the_cluster_is_green_signed_and_names_the_commit(pipeline, kube, k8s_green):
    proc, report = k8s_green
    assert report["passed"] is True and report["builder"] == "kaniko"
    job = report["cluster"]
    assert job["job"].startswith("todo-backend-kaniko-") and job["node"] == kube.facts.node
    assert set(job["images"]) == {"clone", "kaniko"} and all(job["images"].values())
    assert job["phases"]["total"] > 0
    # the build's steps, read from the Job's log as from a local run's: every instruction kaniko runs (it logs
    # all but FROM), in the Containerfile's order
    written = [ln.split()[0] for ln in (Path(__file__).parents[2] / "build/Containerfile").read_text().splitlines()
               if re.match(r"^[A-Z]+ ", ln) and not ln.startswith("FROM ")]
    assert [s["instruction"].split()[0] for s in report["build_steps"]] == written
    assert any(s["seconds"] > 0 for s in report["build_steps"])
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


def test_pods_coming_and_going_leave_the_gateways_mac_as_set(kube, k8s_green):
    """The green run's Job and proof pods joined and left the bridge: its MAC is still the one the cluster set
    (the kernel's default would have followed the lowest veth's MAC, and every other pod's ARP entry for the
    gateway, its registry and its DNS would have pointed nowhere for up to a minute)."""
    from imagepipe.exec import cmdline

    link = Path("/sys/class/net") / kube.facts.bridge
    assert (link / "address").read_text().strip() == cmdline.bridge_mac(kube.facts.id)
    assert (link / "addr_assign_type").read_text().strip() == "3", "set by us, so never recalculated"


def test_the_verified_digest_became_ready_as_a_deployment_before_promote(pipeline, kube, k8s_green):
    """Kubernetes ignores HEALTHCHECK: the run proved the digest with the probes derived from it, as the
    image's user, before it promoted; the Deployment, its Service and its Secret are gone afterwards."""
    proc, report = k8s_green
    proof = report["kubernetes"]
    assert proof["deployment"].startswith("todo-backend-proof-") and proof["namespace"] == NAMESPACE
    assert proof["ready_seconds"] > 0 and proof["run_as"] == 1001
    assert proof["probes"]["startupProbe"] == {"timeoutSeconds": 3, "periodSeconds": 1, "failureThreshold": 8}
    assert proc.stdout.index("as a Deployment in") < proc.stdout.index("==> promote:"), "proved, then promoted"
    rid = proof["deployment"].removeprefix("todo-backend-proof-")

    def proof_left() -> dict[str, list[str]]:  # the run's Job stays Complete (its TTL): only the proof's objects
        left = kube.leftovers(rid)
        return {"deployments": left.get("deployments", []), "services": left.get("services", []),
                "secrets": left["secrets"], "pods": [p for p in left["pods"] if p.startswith(proof["deployment"])]}

    assert _wait(lambda: proof_left() == {"deployments": [], "services": [], "secrets": [], "pods": []},
                 timeout=30), proof_left()


def test_the_shipped_deployment_applied_as_printed_becomes_ready(pipeline, kube, k8s_green):
    """`pipeline.py deployment REF` prints the manifest a team applies; applied exactly as printed (with the
    Secret it names), its pod becomes Ready as uid 1001 with a read-only root."""
    import yaml
    from kubernetes import client, utils

    _, report = k8s_green
    printed = pipeline.run("deployment", report["image"], "--no-provision", env=kube.env())
    assert printed.returncode == 0, printed.stderr
    listed = yaml.safe_load(printed.stdout)
    assert [i["kind"] for i in listed["items"]] == ["Deployment", "Service"]
    api = kube.admin()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "todo-backend-env"}, "stringData": {
        "DATABASE_URL": "postgresql://app@127.0.0.1:1/app", "BETTER_AUTH_SECRET": "s" * 40,
        "OPENAI_API_KEY": "sk-test-shipped-manifest", **MCP_ENV}})
    try:
        for item in listed["items"]:
            utils.create_from_dict(api, item, namespace=NAMESPACE)
        def status():  # noqa: ANN202 - the client's untyped model
            return apps.read_namespaced_deployment("todo-backend", NAMESPACE).status

        assert _wait(lambda: (status().ready_replicas or 0) == 1, timeout=120), status()
        (pod,) = core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/name=todo-backend").items
        assert pod.spec.containers[0].image == report["image"]
        assert pod.spec.security_context.run_as_user == 1001
        assert pod.spec.containers[0].security_context.read_only_root_filesystem is True
    finally:
        apps.delete_namespaced_deployment("todo-backend", NAMESPACE)
        core.delete_namespaced_service("todo-backend", NAMESPACE)
        core.delete_namespaced_secret("todo-backend-env", NAMESPACE)


def test_an_image_whose_health_fails_is_stopped_by_the_probes(kube, k8s_green, tmp_path, monkeypatch):
    """The green digest with its health check broken (it always fails): the probes stop it, the proof is one
    line naming the probe's own output, and the Deployment, its pods and its Secret are deleted."""
    from imagepipe.cli.arguments import parse_args
    from imagepipe.errors import PipelineError
    from imagepipe.exec import runner
    from imagepipe.host import quirks
    from imagepipe.image.refs import ImageRef
    from imagepipe.pipeline.context import Context
    from imagepipe.pipeline.options import from_namespace
    from imagepipe.pipeline.stages import kubeproof

    _, report = k8s_green
    ctr = runner.run(["buildah", "from", "--tls-verify=false", "--quiet", f"docker://{report['image']}"],
                     timeout=300).stdout.strip()
    try:
        root = runner.run(["buildah", "mount", ctr]).stdout.strip()
        Path(root, "app/app/healthcheck.py").write_text(
            "import sys\nprint('unhealthy: broken on purpose', file=sys.stderr)\nsys.exit(1)\n")
        runner.run(["buildah", "commit", "--quiet", "--format", "docker", ctr, "localhost/todo-backend-broken:health"],
                   timeout=300)
    finally:
        runner.run(["buildah", "rm", ctr], ok_codes=(0, 1, 125))
    digestfile = tmp_path / "digest"
    runner.run(["buildah", "push", "--tls-verify=false", "--digestfile", str(digestfile),
                "localhost/todo-backend-broken:health", f"docker://{kube.registry}/todo-backend-broken:health"],
               timeout=300)
    image = ImageRef.parse(f"{kube.registry}/todo-backend-broken@{digestfile.read_text().strip()}")
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    args = from_namespace(parse_args(["--kube-context", kube.builder, "--kube-namespace", NAMESPACE,
                                      "--registry", kube.registry, "--insecure-registry", kube.registry]))
    ctx = Context(args, quirks.detect(), tmp_path / "state", run_id="brokenhealth")
    with pytest.raises(PipelineError) as failed:
        kubeproof.prove(ctx, image)
    ctx.close_access()
    assert failed.value.message.startswith(
        f"the verified digest ran as the Deployment todo-backend-proof-brokenhealth in {NAMESPACE}, and its probes "
        "(from the image's HEALTHCHECK) restarted it: Startup probe failed: unhealthy: broken on purpose"), \
        failed.value.message
    assert failed.value.message.endswith("nothing was promoted")
    assert _wait(lambda: kube.leftovers("brokenhealth") == {"jobs": [], "pods": [], "secrets": []}, timeout=30), \
        kube.leftovers("brokenhealth")


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
    """The run submitted a Job (its id is in the output), and its Job, pods and Secrets are gone."""
    rid = run_id(proc.stdout)
    assert rid, "the run submitted a Job: " + proc.stdout[-2000:]
    assert _wait(lambda: kube.leftovers(rid) == {"jobs": [], "pods": [], "secrets": []}, timeout=10), \
        kube.leftovers(rid)


def nothing_made(kube, proc, before: dict[str, list[str]]) -> None:
    """The run submitted no Job, and the namespace holds no Job, pod or Secret of a run that it did not."""
    assert run_id(proc.stdout) is None, "no Job was submitted"
    assert kube.leftovers() == before


def test_an_executor_the_nodes_cannot_pull(pipeline, cluster):
    proc = run(pipeline, cluster, "--kaniko-image", "kaniko.invalid/executor:1")
    one_line(proc, "the cluster cannot pull kaniko.invalid/executor:1", "--kaniko-image")
    no_leftovers(cluster, proc)  # submitted: this host could not check that registry


def test_an_executor_missing_from_its_registry_is_refused_before_the_job(pipeline, cluster):
    before = cluster.leftovers()
    proc = run(pipeline, cluster, "--kaniko-image", f"{cluster.registry}/nope/kaniko:0")
    one_line(proc, f"{cluster.registry}/nope/kaniko:0 does not exist", "--kaniko-image")
    nothing_made(cluster, proc, before)


def test_a_commit_the_clone_cannot_fetch(pipeline, kube):
    proc = run(pipeline, kube, "--git-url", f"{kube.facts.git_url}/nope.git")
    one_line(proc, "the Job could not fetch commit", "nope.git", "--git-url")
    no_leftovers(kube, proc)


def test_the_deadline(pipeline, kube):
    proc = run(pipeline, kube, "--job-deadline", "6")
    one_line(proc, "activeDeadlineSeconds (6 s)", "--job-deadline")
    no_leftovers(kube, proc)


def test_a_missing_namespace(pipeline, cluster):
    proc = pipeline.run(*cluster.args(context=cluster.facts.context), "--kube-namespace", "nope", env=cluster.env())
    one_line(proc, "namespace nope does not exist", "--kube-namespace")
    assert run_id(proc.stdout) is None


def test_an_unreachable_cluster(pipeline, cluster, tmp_path):
    from imagepipe.cluster import configs
    from imagepipe.services.postgres import free_port

    config = tmp_path / "kubeconfig"
    config.write_text(configs.kubeconfig(name="gone", server=f"https://127.0.0.1:{free_port()}",
                                         ca=Path(cluster.facts.dir) / "pki/ca.crt", user="u", token="t"))
    proc = pipeline.run(*cluster.args(context="gone"), env={**cluster.env(), "KUBECONFIG": str(config)})
    one_line(proc, "cannot be reached", "context gone")


def test_a_role_without_create_jobs_is_one_line_and_leaves_no_secret(pipeline, cluster, tmp_path):
    import yaml
    from kubernetes import client

    from imagepipe.cluster import configs

    api = cluster.admin()
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
    config.write_text(configs.kubeconfig(name="limited", server=cluster.facts.server,
                                         ca=Path(cluster.facts.dir) / "pki/ca.crt", user="limited", token=token,
                                         namespace=NAMESPACE))
    before = cluster.leftovers()
    # refused before kaniko would run: any image in the cluster's registry stands for the executor
    proc = pipeline.run(*cluster.args(context="limited"), "--kaniko-image", cluster.git_image,
                        env={**cluster.env(), "KUBECONFIG": str(config)})
    one_line(proc, "may not create jobs", "ci/rbac.yaml")
    assert cluster.leftovers() == before, "the Secrets made before the refused Job are deleted"


def test_sigterm_during_the_job_deletes_it_within_10_s(pipeline, kube):
    started = Started(pipeline, *kube.args(), env=kube.env())
    started.wait_for_line("    | ", timeout=300)  # kaniko's log is streaming: the Job runs
    rid = run_id("".join(started.out))
    assert rid and kube.leftovers(rid)["jobs"]
    code, seconds, err = started.signal(signal.SIGTERM)
    assert code == 143, err
    assert seconds < 10, f"stopped in {seconds:.1f} s"
    assert kube.leftovers(rid) == {"jobs": [], "pods": [], "secrets": []}


def test_a_killed_runs_job_is_deleted_by_the_next_run(pipeline, kube):
    started = Started(pipeline, *kube.args(), env=kube.env())
    started.wait_for_line("    | ", timeout=300)
    rid = run_id("".join(started.out))
    started.kill()
    assert kube.leftovers(rid)["jobs"], "SIGKILL cannot be caught: the Job is left"
    proc = pipeline.run("lint", "--no-provision", env=kube.env())
    assert proc.returncode == 0, proc.stderr
    assert f"deleted Job todo-backend-kaniko-{rid} in {NAMESPACE} of interrupted run {rid}" in proc.stdout
    assert _wait(lambda: kube.leftovers(rid) == {"jobs": [], "pods": [], "secrets": []}, timeout=10)


def test_two_runs_at_once_get_two_jobs_and_both_pass(pipeline, kube, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    def one(repo: str):
        return pipeline.run(*kube.args(repo=repo), "--state-dir", str(tmp_path / repo), env=kube.env())

    repos = ("todo-backend-k8s-a", "todo-backend-k8s-b")
    try:
        with ThreadPoolExecutor(2) as pool:
            procs = list(pool.map(one, repos))
    finally:  # each state directory's signature server, left running by its promote
        for repo in repos:
            pipeline.run("registry", "stop", "--state-dir", str(tmp_path / repo))
            stop_processes_under(tmp_path / repo)
    for proc in procs:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert run_id(procs[0].stdout) != run_id(procs[1].stdout)


def test_parity_across_the_cluster_gives_buildahs_tree(pipeline, kube, tmp_path):
    proc = pipeline.run("parity", *kube.args(), "--report", str(tmp_path / "p.json"), env=kube.env())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    report = json.loads((tmp_path / "p.json").read_text())
    assert [d for d in report["differences"] if d["kind"] == "tree"] == [], "the Job's tree is buildah's"
    assert report["counts"]["paths"] == report["counts"]["paths_kaniko"] > 1000


def test_the_jobs_pip_cache_serves_the_next_cold_build_the_same_image(pipeline, kube, k8s_green, tmp_path):
    """Two cold Job builds (each repository's kaniko cache empty) with one --pip-cache: the first compiles
    psycopg-c into a wheelhouse in the claim, the second compiles nothing, and both push the digest the Job
    gives without the claim."""
    from kubernetes import client

    store = tmp_path / "pip-cache"
    core = client.CoreV1Api(kube.admin())
    volumes.host_path_claim(core, "imagepipe-test-pip-cache", store, namespace=NAMESPACE)
    try:
        procs, digests = [], []
        for repo in ("todo-backend-pipcache-a", "todo-backend-pipcache-b"):
            report = tmp_path / f"{repo}.json"
            # each its own kaniko cache: the pip cache, not kaniko's, must serve the second build
            proc = pipeline.run(*kube.args(repo=repo, cold=True), "--pip-cache", "imagepipe-test-pip-cache",
                                "--state-dir", str(tmp_path / repo), "--report", str(report), env=kube.env(),
                                timeout=1800)
            pipeline.run("registry", "stop", "--state-dir", str(tmp_path / repo))
            stop_processes_under(tmp_path / repo)
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
            assert "| pip cache: /run/pip-cache/wheels-" in proc.stdout
            procs.append(proc)
            digests.append(json.loads(report.read_text())["image"].split("@")[1])
        assert "Building wheel for psycopg-c" in procs[0].stdout
        (house,) = store.glob("wheels-*")
        assert (house / ".complete").exists() and list(house.glob("psycopg_c-3.3.8-*.whl")), sorted(store.iterdir())
        assert "Building wheel for psycopg-c" not in procs[1].stdout, "the second build compiled again"
        assert f"| pip cache: /run/pip-cache/{house.name}" in procs[1].stdout
        assert digests[0] == digests[1] == k8s_green[1]["image"].split("@")[1]
    finally:
        core.delete_namespaced_persistent_volume_claim("imagepipe-test-pip-cache", NAMESPACE)
        core.delete_persistent_volume("imagepipe-test-pip-cache")


def test_a_pip_cache_claim_that_does_not_exist(pipeline, kube):
    proc = run(pipeline, kube, "--pip-cache", "imagepipe-no-such-claim")
    one_line(proc, "volume claim imagepipe-no-such-claim does not exist", "--pip-cache imagepipe-no-such-claim")
    no_leftovers(kube, proc)


def run_commit(kube, tmp_path: Path, edit, branch: str, *extra: str):
    """The Job over a commit of a fresh clone changed by `edit(root)`, pushed to the cluster's git server; the
    pipeline run from that clone (so the commit is the one the Job fetches)."""
    from test_checkouts_e2e import Checkout

    clone = Checkout(tmp_path / branch)
    edit(clone.root)
    git = ["git", "-C", str(clone.root), "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run([*git, "commit", "-qam", branch], check=True)
    subprocess.run([*git, "push", "-q", str(Path(kube.facts.dir) / "git/todo.git"), f"HEAD:refs/heads/{branch}"],
                   check=True)
    proc = subprocess.run([str(clone.root / ".venv/bin/python"), str(clone.root / "build/pipeline.py"),
                           *kube.args(), *extra], cwd=clone.root, capture_output=True, text=True, timeout=1800,
                          env=kube.env())
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def test_a_failing_run_step_in_the_job(kube, tmp_path):
    """The step prints apt's "Permission denied" and exits 3: a failed RUN, not refused credentials."""
    from build_failures import FAILING_STEP

    def edit(root: Path) -> None:
        containerfile = root / "build/Containerfile"
        containerfile.write_text(containerfile.read_text().replace(
            "ARG WHEELHOUSE=none", f"ARG WHEELHOUSE=none\n{FAILING_STEP}", 1))

    proc = run_commit(kube, tmp_path, edit, "broken")
    line = one_line(proc, "kaniko Job", "failed (exit 3): error building image:", "exit status 3")
    assert "credentials" not in line
    no_leftovers(kube, proc)


def test_a_run_step_in_the_job_failing_on_tls_names_build_ca(kube, tmp_path):
    """pip's index is behind a CA that no --build-ca bundle holds (the host's is given, as a user behind an
    intercepting proxy gives it): the line names the index and --build-ca."""
    from build_failures import PrivateIndex

    index = PrivateIndex(tmp_path, ip=kube.facts.node_ip)  # the pods reach the node's address

    def edit(root: Path) -> None:
        requirements = root / "backend/requirements.txt"
        requirements.write_text(f"--index-url {index.url}\n" + requirements.read_text())

    try:
        proc = run_commit(kube, tmp_path, edit, "private-index")
    finally:
        index.stop()
    one_line(proc, "kaniko Job todo-backend-kaniko-", "pip in the build does not trust the TLS certificate of "
             f"{kube.facts.node_ip}:{index.port} (CERTIFICATE_VERIFY_FAILED): pass --build-ca FILE")
    no_leftovers(kube, proc)


def test_a_registry_refusing_the_credentials(pipeline, kube, tmp_path):
    """Wrong --creds are refused before any Job is made (the run's one registry access checks them, as
    `podman login` would); wrong credentials only the Job has (--kube-secret) are refused by kaniko in the
    Job, reported in one line, and the Job and its pods deleted."""
    import base64
    import json

    import bcrypt
    from kubernetes import client

    from imagepipe.registry.hostconfig import REGISTRIES_D

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
    assert run_id(early.stdout) is None, "no Job was submitted"
    one_line(in_job, "refused kaniko's credentials")
    no_leftovers(kube, in_job)


def test_node_placement_reads_the_real_api_server(cluster):
    """The architectures come from the nodes' kubernetes.io/arch labels as the API server lists them (a
    second node, arm64, is registered through the API for the test, tainted so nothing lands on it); an
    identity with ci/rbac.yaml's namespaced Role may not list nodes (403): each platform then goes anywhere."""
    import os

    from kubernetes import client

    from imagepipe.builders import kubejob
    from imagepipe.image.platforms import Platform
    from imagepipe.pipeline.stages.incluster import placement

    core = client.CoreV1Api(cluster.admin())
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    try:
        admin = kubejob.Cluster(cluster.facts.context, NAMESPACE)
        assert kubejob.node_architectures(admin) == {"amd64"}
        core.create_node({"metadata": {"name": "imagepipe-test-arm64", "labels": {"kubernetes.io/arch": "arm64"}},
                          "spec": {"taints": [{"key": "imagepipe.test/fake", "effect": "NoSchedule"}]}})
        try:
            both = kubejob.node_architectures(admin)
        finally:
            core.delete_node("imagepipe-test-arm64")
        assert both == {"amd64", "arm64"}
        assert placement(both, Platform("linux", "arm64")) == ("arm64", None), "native on the arm64 node"
        builder = kubejob.node_architectures(kubejob.Cluster(cluster.builder, NAMESPACE))
        assert builder == set(), "the namespaced Role may not list nodes"
        assert placement(builder, Platform("linux", "arm64")) == (None, "linux/arm64")
    finally:
        if old is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = old


def test_each_platform_is_placed_from_the_real_api_servers_nodes(cluster, monkeypatch):
    """Placement reads the nodes through the API as the pipeline's identity may: an admin lists this node's
    architecture (a foreign platform goes there, emulated); the namespaced Role may not list nodes (403), so
    each platform goes anywhere with kaniko told its platform."""
    from imagepipe.builders import kubejob
    from imagepipe.image.platforms import Platform, host
    from imagepipe.pipeline.stages.incluster import placement

    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    native = host()
    other = Platform("linux", "arm64" if native.arch == "amd64" else "amd64")
    arches = kubejob.node_architectures(kubejob.Cluster(cluster.facts.context, NAMESPACE))
    assert arches == {native.arch}
    assert placement(arches, native) == (native.arch, None)
    assert placement(arches, other) == (native.arch, str(other))
    limited = kubejob.node_architectures(kubejob.Cluster(cluster.builder, NAMESPACE))
    assert limited == set()
    assert placement(limited, other) == (None, str(other))
