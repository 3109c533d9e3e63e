"""verify inside the cluster, with nothing on a host: the pipeline's own image (`pipeline.py pipeline-image`,
ci/pipeline.Containerfile) runs `build/pipeline.py verify` in a pod of the local cluster, from a checkout of
this commit its clone step fetched, under ci/pipeline-job.yaml's security context. Every check passes there,
and no podman or buildah process runs on the host while it does (each one seen is in the cluster's cgroup)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kube_support import NAMESPACE, wait_for
from pipeline_support import WARM_CACHE

from imagepipe.checks.catalog import CHECK_IDS
from imagepipe.exec import cmdline
from imagepipe.paths import HOST_CA_BUNDLE, ROOT
from imagepipe.supplychain import cosigning

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pipeline_image(pipeline, cluster) -> str:
    """The pipeline image, built here and pushed to the cluster's registry (set-up: before any count)."""
    proc = pipeline.run("pipeline-image", "--no-provision", "--registry", cluster.registry, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def _under_conmon(pid: int) -> bool:
    for _ in range(64):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if comm == "conmon":
            return True
        pid = int(rest[1])
        if pid <= 1:
            return False
    return False


def _cgroup(pid: int) -> str | None:
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    return next((line.split("::", 1)[1] for line in lines if line.startswith("0::")), "")


def _start_time(proc: Path) -> str:
    """The process's start time (stat field 22), "" for a zombie: the same value twice means the same living
    process."""
    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    return "" if fields[0] in ("Z", "X") else fields[19]


LANE = "PYTEST_XDIST_WORKER"  # the lane a process belongs to: xdist sets it in each worker, children inherit it


@dataclass(frozen=True)
class Seen:
    cgroup: str
    argv: str
    lane: str | None  # the worker whose descendant it is; None: started by no lane's process (or no lanes)
    under_conmon: bool  # a container's own cleanup (`podman container cleanup`), conmon's child


class HostTools:
    """Every podman and buildah process seen while it runs, with its cgroup, command line and lane: polled
    from /proc. The other lane's are seen too, and told apart by the lane they inherited."""

    def __init__(self) -> None:
        self.seen: dict[int, Seen] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.stop.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit() or int(proc.name) in self.seen:
                    continue
                try:
                    comm = (proc / "comm").read_text().strip()
                    if comm not in ("podman", "buildah"):
                        continue
                    born = _start_time(proc)
                    env = dict(v.split(b"=", 1) for v in (proc / "environ").read_bytes().split(b"\0") if b"=" in v)
                    argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    cgroup = _cgroup(int(proc.name))
                    conmon = _under_conmon(int(proc.name))
                    # whole only if it was the same living process throughout: an exiting one reads back an empty
                    # environment (no error) and then no cgroup, and would be taken for a lane-less host podman
                    if not env or cgroup is None or _start_time(proc) != born:
                        continue
                except (OSError, IndexError, ValueError):
                    continue  # gone before it could be read whole
                lane = env.get(LANE.encode())
                self.seen[int(proc.name)] = Seen(cgroup, argv[:200], lane.decode() if lane else None, conmon)
            time.sleep(0.1)

    def outside(self, cluster_cgroup: str) -> dict[int, Seen]:
        """What ran on the host for this lane: not in the cluster's cgroup, not the other lane's. A container's
        cleanup that conmon starts inherits no lane; the podman that made the container is what counts, and
        it inherits this lane's."""
        own = os.environ.get(LANE)
        return {pid: s for pid, s in self.seen.items()
                if not s.cgroup.startswith(cluster_cgroup) and s.lane in (None, own) and not s.under_conmon}

    def inside(self, cluster_cgroup: str) -> dict[int, Seen]:
        return {pid: s for pid, s in self.seen.items() if s.cgroup.startswith(cluster_cgroup)}

    def __enter__(self) -> HostTools:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def _trusting(kube, command: str) -> list[str]:
    """`command` in a shell that first tells the pod's containers tools that the cluster's registry speaks
    plain HTTP, as a user's pod would be told of theirs (a registries.conf.d entry)."""
    trust = (f'printf \'[[registry]]\\nlocation = "{kube.registry}"\\ninsecure = true\\n\' '
             "> /etc/containers/registries.conf.d/90-cluster.conf")
    return ["sh", "-c", f"{trust} && {command}"]


def _job_pod(kube, image: str, store: Path | None = None) -> dict:
    """ci/pipeline-job.yaml, its placeholders filled: the clone step fetching this commit from the cluster's
    git server, the pipeline's image, and the suite's advisory sources (tests/conftest.py's OSV records, the
    Debian index the cluster fixture serves); the lookaside's
    volume a directory of this single node (`store`), or, without one, nothing of the signing Secret at all
    (its volumes, and COSIGN_PASSWORD, which would keep the container from starting where it does not exist)."""
    job = yaml.safe_load((ROOT / "ci/pipeline-job.yaml").read_text())
    pod = job["spec"]["template"]["spec"]
    if store is None:
        pod["volumes"] = [v for v in pod["volumes"] if v["name"] not in ("signing", "lookaside")]
        pod["containers"][0]["volumeMounts"] = [m for m in pod["containers"][0]["volumeMounts"]
                                                if m["name"] not in ("signing", "lookaside")]
        pod["containers"][0]["env"] = [e for e in pod["containers"][0]["env"]
                                       if "secretKeyRef" not in e.get("valueFrom", {})]
    else:
        (lookaside,) = (v for v in pod["volumes"] if v["name"] == "lookaside")
        lookaside.pop("persistentVolumeClaim")
        lookaside["hostPath"] = {"path": str(store), "type": "Directory"}
    clone = pod["initContainers"][0]
    clone["image"] = kube.git_image
    clone["env"] = [{"name": "GIT_URL", "value": kube.git_url}, {"name": "GIT_REF", "value": kube.commit},
                    {"name": "HOME", "value": "/workspace"}]
    main = pod["containers"][0]
    main["image"] = image
    main["env"] = [{"name": "GIT_URL", "value": kube.git_url} if e["name"] == "GIT_URL" else e
                   for e in main.get("env", [])]
    main["env"] += [{"name": "IMAGEPIPE_VULN_DB", "value": "tests/fixtures/osv/pypa"},
                    {"name": "IMAGEPIPE_VULN_DB_MAX_AGE", "value": os.environ["IMAGEPIPE_VULN_DB_MAX_AGE"]},
                    {"name": "IMAGEPIPE_DEBIAN_SECURITY_INDEX", "value": kube.debian_index}]
    return job


def _pod(kube, image: str, backend: str) -> dict:
    """ci/pipeline-job.yaml's pod, running verify of `backend` instead of the whole job."""
    pod = _job_pod(kube, image)["spec"]["template"]["spec"]
    main = pod["containers"][0]
    main["command"] = _trusting(kube, f"python3 build/pipeline.py verify --no-provision {backend} "
                                "--report /workspace/report.json; code=$?; echo; echo REPORT $(cat "
                                "/workspace/report.json | tr -d '\\n'); exit $code")
    main.pop("args")
    pod["serviceAccountName"] = "default"
    pod["automountServiceAccountToken"] = False  # verify needs no API access
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "imagepipe-verify-in-pod"}, "spec": pod}


def test_verify_runs_whole_inside_a_pod_with_nothing_on_the_host(pipeline, green, cluster, pipeline_image):
    from kubernetes import client

    kube = cluster

    # green's own image: the session's last push may be any test's (a cluster test's, in the cluster's registry)
    pushed = green[1]["image"]
    backend = f"{kube.registry}/todo-backend@{pushed.split('@')[1]}"
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{pushed}", f"docker://{backend}"], check=True, timeout=300)
    core = client.CoreV1Api(kube.admin())
    from imagepipe.cluster.facts import cgroup2_root

    cluster_cgroup = "/" + str(Path(kube.facts.cgroup).relative_to(cgroup2_root()))
    try:
        with HostTools() as tools:
            core.create_namespaced_pod(NAMESPACE, _pod(kube, pipeline_image, backend))
            deadline = time.monotonic() + 900
            while (phase := core.read_namespaced_pod("imagepipe-verify-in-pod", NAMESPACE).status.phase) not in (
                    "Succeeded", "Failed"):
                assert time.monotonic() < deadline, f"the pod is still {phase}"
                time.sleep(2)
        log = core.read_namespaced_pod_log("imagepipe-verify-in-pod", NAMESPACE, container="pipeline")
    finally:
        core.delete_namespaced_pod("imagepipe-verify-in-pod", NAMESPACE, grace_period_seconds=0)
    print(log[-6000:])
    assert phase == "Succeeded", log[-4000:]
    report = json.loads(log.split("REPORT ", 1)[1].splitlines()[0])
    assert report["passed"] is True and len(report["checks"]) == len(CHECK_IDS)
    assert [c["id"] for c in report["checks"] if not c["passed"]] == []
    assert tools.inside(cluster_cgroup), f"the sampler saw no podman in the cluster's cgroup {cluster_cgroup}: " \
        f"{tools.seen}"
    assert tools.outside(cluster_cgroup) == {}, f"podman or buildah ran on the host: {tools.outside(cluster_cgroup)}"


def test_submit_before_the_lookaside_exists_is_one_line_naming_its_claim(pipeline, cluster, pipeline_image):
    """ci/pipeline-job.yaml mounts ci/lookaside.yaml's claim: without it the pod would wait for ever."""
    args = ["submit", "--no-provision", "--kube-context", cluster.builder, "--kube-namespace", NAMESPACE,
            "--pipeline-image", pipeline_image, "--registry", cluster.registry, "--git-url", cluster.git_url,
            "--lookaside", "http://imagepipe-lookaside.invalid", "--git-image", cluster.git_image]
    proc = pipeline.run(*args, env=cluster.env(), timeout=600)
    assert proc.returncode != 0
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert line.endswith(f"cannot be scheduled: its volume claim imagepipe-lookaside does not exist in {NAMESPACE} "
                         "(ci/lookaside.yaml makes imagepipe-lookaside)"), line
    rid = re.search(r"==> submit: Job todo-backend-pipeline-(\w+) in ", proc.stdout).group(1)
    assert wait_for(lambda: cluster.leftovers(rid) == {"jobs": [], "pods": [], "secrets": []}, timeout=60), \
        cluster.leftovers(rid)


@dataclass
class Team:
    """imagepipe.cluster.team's set-up, as the submit tests read it."""
    public: str  # the armored public key
    fingerprint: str
    cosign_public: Path  # the team's cosign public key (PEM): its private half is the Secret's cosign.key
    store: Path  # the lookaside volume's directory on this single node
    lookaside: str  # where consumers read it


@pytest.fixture(scope="module")
def team(cluster, pipeline_image, tmp_path_factory) -> Team:
    from imagepipe.cluster import team as teams

    api = cluster.admin()
    made = tmp_path_factory.mktemp("team")
    key = teams.new_key(made / "gnupg")
    cosign_public = made / "cosign.pub"
    cosign_public.write_text(key.cosign.public)
    # the lookaside server reads it as a non-root user: outside pytest's 0700 temporary directories
    store = Path(tempfile.mkdtemp(prefix="imagepipe-lookaside-"))
    store.chmod(0o755)
    try:
        yield Team(key.public, key.fingerprint, cosign_public, store,
                   teams.set_up(api, NAMESPACE, image=pipeline_image, store=store, key=key))
    finally:
        teams.tear_down(api, NAMESPACE)
        shutil.rmtree(store, ignore_errors=True)


def _wait_pod(core, name: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while (phase := core.read_namespaced_pod(name, NAMESPACE).status.phase) not in ("Succeeded", "Failed"):
        assert time.monotonic() < deadline, f"the pod {name} is still {phase}"
        time.sleep(2)
    return phase


def test_submit_runs_the_whole_job_in_the_cluster_and_a_pod_there_checks_its_signatures(pipeline, kube, pipeline_image,
                                                                                        team, tmp_path):
    """`pipeline.py submit` from this host, which only calls the API: ci/pipeline-job.yaml as shipped runs
    the clone, the kaniko Job, verify with podman in the pod, the Deployment proof, and promote signing with
    the team's key from its Secret into ci/lookaside.yaml's volume, and with cosign by the team's cosign key
    from the same Secret; submit streams it and exits with its code. Then a second pod of the cluster installs
    the trust policy for that key and lookaside, pulls the promoted tag under it and `attest verify`s the
    digest, and refuses an unsigned image both ways; this host's cosign finds the digest signed, and its
    verification attested, by the team's cosign key. No podman or buildah runs on the host (some do in the
    cluster's cgroup: the pods')."""
    from kubernetes import client

    api = kube.admin()
    core = client.CoreV1Api(api)
    repo = "todo-backend-incluster"
    store, lookaside, fingerprint = team.store, team.lookaside, team.fingerprint
    from imagepipe.cluster.facts import cgroup2_root

    cluster_cgroup = "/" + str(Path(kube.facts.cgroup).relative_to(cgroup2_root()))
    consumer = ""
    try:
        with HostTools() as tools:
            # this cluster's images and air gap: the executor and the clone step's image in its registry,
            # which is also kaniko's docker.io mirror and speaks plain HTTP; the proxy's CA for pip in the build
            proc = pipeline.run(
                "submit", "--no-provision", "--kube-context", kube.builder, "--kube-namespace", NAMESPACE,
                "--pipeline-image", pipeline_image, "--registry", kube.registry, "--git-url", kube.git_url,
                "--lookaside", lookaside, "--repo", repo, "--kaniko-image", kube.executor, "--git-image",
                kube.git_image, "--registry-mirror", kube.registry, "--insecure-registry", kube.registry,
                "--build-ca", str(HOST_CA_BUNDLE), "--cache-repo", WARM_CACHE, "--report", str(tmp_path / "r.json"),
                "--junit", str(tmp_path / "r.xml"), env=kube.env(), timeout=2400)
            assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr
            report = json.loads((tmp_path / "r.json").read_text())
            rid = report["kubernetes"]["deployment"].removeprefix("todo-backend-proof-")
            digest = report["image"].split("@")[1]
            signed = sorted(p.name for p in (store / f"{repo}@{digest.replace(':', '=')}").glob("*"))
            latest_digest = json.loads(subprocess.run(
                ["skopeo", "inspect", f"docker://{kube.registry}/{repo}:latest"], capture_output=True, text=True,
                check=True, timeout=120).stdout)["Digest"]
            # the consumer: a pod of the cluster that trusts only the team's key, reading the team's lookaside
            digestfile = tmp_path / "unsigned.digest"
            unsigned = f"{kube.registry}/{repo}:unsigned"
            subprocess.run(["skopeo", "copy", "-q", "--digestfile", str(digestfile),
                            f"docker://{kube.registry}/imagepipe/git:1", f"docker://{unsigned}"], check=True,
                           timeout=300)
            unsigned_digest = digestfile.read_text().strip()
            check = _pod(kube, pipeline_image, "unused")
            check["metadata"]["name"] = "imagepipe-consumer"
            cmain = check["spec"]["containers"][0]
            trust = (f"python3 build/pipeline.py trust --install --no-provision --registry {kube.registry} "
                     f"--repo {repo} --public-key /etc/imagepipe/signing/public.asc --lookaside {lookaside}")
            options = f"--no-provision --public-key /etc/imagepipe/signing/public.asc --lookaside {lookaside}"
            cmain["command"] = _trusting(kube, " ; ".join([
                f"{trust} >/dev/null",
                f"podman pull -q {kube.registry}/{repo}:latest >/tmp/out 2>&1; echo PULL-LATEST $?; tail -3 /tmp/out",
                f"podman pull -q {unsigned} >/tmp/out 2>&1; echo PULL-UNSIGNED $?; tail -1 /tmp/out",
                f"python3 build/pipeline.py attest verify {kube.registry}/{repo}@{digest} {options} >/tmp/out 2>&1; "
                "echo ATTEST-LATEST $?; tail -3 /tmp/out",
                f"python3 build/pipeline.py attest verify {kube.registry}/{repo}@{unsigned_digest} {options} "
                ">/tmp/out 2>&1; echo ATTEST-UNSIGNED $?; cat /tmp/out"]))
            cmain["volumeMounts"] += [{"name": "signing", "mountPath": "/etc/imagepipe/signing", "readOnly": True}]
            check["spec"]["volumes"] += [{"name": "signing", "secret": {"secretName": "imagepipe-signing"}}]
            core.create_namespaced_pod(NAMESPACE, check)
            _wait_pod(core, "imagepipe-consumer", 600)
            consumer = core.read_namespaced_pod_log("imagepipe-consumer", NAMESPACE, container="pipeline")
        left = kube.leftovers(rid)
        # the pipeline's pod owns what the run made: deleting its Job deletes the kaniko Job too (the garbage
        # collector), as it would after a pipeline killed before its own clean-up
        submitted = re.search(r"==> submit: Job (todo-backend-pipeline-\w+) in ", proc.stdout).group(1)
        client.BatchV1Api(api).delete_namespaced_job(submitted, NAMESPACE, propagation_policy="Background")
        deadline = time.monotonic() + 120
        while (after := kube.leftovers(rid))["jobs"] or after["pods"]:
            assert time.monotonic() < deadline, f"the run's objects outlived the pipeline's pod: {after}"
            time.sleep(1)
    finally:
        try:
            core.delete_namespaced_pod("imagepipe-consumer", NAMESPACE, grace_period_seconds=0)
        except client.ApiException:
            pass
    print(consumer)
    # cosign's proofs, read from this host by the real cosign with the team's public key alone: the pod signed
    # and attested with the Secret's key, not with a pair of its own that died with it
    promoted = f"{kube.registry}/{repo}@{digest}"
    plain_http = cmdline.CosignRegistry(tls_verify=False)  # the cluster's registry speaks plain HTTP
    cosign_work = tmp_path / "cosign"
    unsigned_by_team = cosigning.verify(team.cosign_public, promoted, plain_http, cosign_work, stage="test")
    proofs, no_proof = cosigning.attestations(team.cosign_public, promoted, cosigning.VERIFICATION_TYPE, plain_http,
                                              cosign_work, stage="test")
    # submit streamed the pod's progress and ended as it did
    assert "==> submit: Job todo-backend-pipeline-" in proc.stdout
    for stage in ("==> lint:", "==> build: kaniko Job in in-cluster", "==> verify:", "as a Deployment in",
                  "==> promote:"):
        assert stage in proc.stdout, stage
    assert "imagepipe-report: " not in proc.stdout, "the report's log line is written to --report, not shown"
    assert (tmp_path / "r.xml").read_text().startswith("<?xml") and 'failures="0"' in (tmp_path / "r.xml").read_text()
    assert report["passed"] is True and report["builder"] == "kaniko"
    assert [c["id"] for c in report["checks"] if not c["passed"]] == []
    assert report["cluster"]["job"].startswith("todo-backend-kaniko-")
    assert latest_digest == digest
    assert signed == ["signature-1"], "signed into the team's lookaside"
    assert report["signature"]["lookaside"] == lookaside and report["signature"]["signer"] == fingerprint
    assert report["cosign"]["key"] == "/etc/imagepipe/signing/cosign.key" and report["cosign"]["signed"] == [digest]
    assert unsigned_by_team == "", f"no cosign signature by the team's key on {promoted}: {unsigned_by_team}"
    assert proofs, f"no verification attestation signed by the team's cosign key: {no_proof}"
    for proof in proofs:  # every verification statement the team's key signed: this run's
        assert [s["digest"]["sha256"] for s in proof["subject"]] == [digest.split(":", 1)[1]]
        assert proof["predicate"]["passed"] is True and proof["predicate"]["image"]["digest"] == digest
        assert [(c["id"], c["result"], c["where"]) for c in proof["predicate"]["checks"]] == [
            (c["id"], "pass", "pod") for c in report["checks"]]
    # the run's kaniko Job stays Complete for its TTL; its pod, Secrets and the proof's objects are gone
    assert left["secrets"] == [] and "deployments" not in left and "services" not in left, left
    assert all(p.startswith("todo-backend-kaniko-") or p.startswith("todo-backend-pipeline-")
               for p in left["pods"]), left
    assert "PULL-LATEST 0" in consumer, consumer
    assert re.search(r"PULL-UNSIGNED [1-9]\d*\n.*signature", consumer), consumer
    assert "ATTEST-LATEST 0" in consumer, consumer
    assert re.search(rf"ATTEST-UNSIGNED [1-9]\d*\nattest: image {unsigned_digest}: no signature\n", consumer), consumer
    assert tools.inside(cluster_cgroup), f"the sampler saw no podman in the cluster's cgroup {cluster_cgroup}: " \
        f"{tools.seen}"
    assert tools.outside(cluster_cgroup) == {}, f"podman or buildah ran on the host: {tools.outside(cluster_cgroup)}"


def _submit_args(kube, pipeline_image: str, team: Team, *extra: str) -> list[str]:
    return ["submit", "--no-provision", "--kube-context", kube.builder, "--kube-namespace", NAMESPACE,
            "--pipeline-image", pipeline_image, "--registry", kube.registry, "--git-url", kube.git_url,
            "--lookaside", team.lookaside, "--git-image", kube.git_image, "--cache-repo", WARM_CACHE, *extra]


def _submitted(out: str) -> str:
    found = re.search(r"==> submit: Job todo-backend-pipeline-(\w+) in ", out)
    assert found, out[-2000:]
    return found.group(1)


def _error_lines(proc) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]


def test_submit_with_a_pipeline_image_the_nodes_cannot_pull_is_one_line_and_leaves_nothing(pipeline, cluster, team):
    image = f"{cluster.registry}/nope/pipeline:0"
    proc = pipeline.run(*_submit_args(cluster, image, team), env=cluster.env(), timeout=600)
    assert proc.returncode != 0
    (line,) = _error_lines(proc)
    assert f"the cluster cannot pull {image} (container pipeline: " in line and "--pipeline-image" in line, line
    rid = _submitted(proc.stdout)
    # deleted with the pods' grace period (a pipeline in one would clean up): gone within it
    assert wait_for(lambda: cluster.leftovers(rid) == {"jobs": [], "pods": [], "secrets": []}, timeout=60), \
        cluster.leftovers(rid)


def test_submit_into_a_namespace_without_ci_rbac_is_one_line_naming_it(pipeline, cluster, team):
    """The Job's ServiceAccount (ci/rbac.yaml's) is missing there: the Job controller cannot make the pod."""
    from kubernetes import client

    core = client.CoreV1Api(cluster.admin())
    core.create_namespace({"metadata": {"name": "imagepipe-norbac"}})
    try:
        args = _submit_args(cluster, "unused.invalid/pipeline:1", team)
        args[args.index("--kube-context") + 1] = cluster.facts.context  # an admin may submit there
        args[args.index("--kube-namespace") + 1] = "imagepipe-norbac"
        proc = pipeline.run(*args, env=cluster.env(), timeout=600)
        assert proc.returncode != 0
        (line,) = _error_lines(proc)
        assert "the cluster refused to create the pod of Job todo-backend-pipeline-" in line, line
        assert "imagepipe-builder" in line and line.endswith("apply ci/rbac.yaml in that namespace"), line
        batch = client.BatchV1Api(cluster.admin())
        assert batch.list_namespaced_job("imagepipe-norbac").items == []
    finally:
        core.delete_namespace("imagepipe-norbac")


def test_the_pipelines_pod_killed_mid_build_takes_the_runs_kaniko_job_with_it(pipeline, kube, pipeline_image, team):
    """SIGKILL for the pipeline (its pod deleted without grace) leaves its clean-up undone: the garbage
    collector deletes what its pod owns, and submit says what happened in one line."""
    from kubernetes import client
    from test_cancel_e2e import Started

    started = Started(pipeline, *_submit_args(
        kube, pipeline_image, team, "--repo", "todo-backend-killed", "--kaniko-image", kube.executor,
        "--registry-mirror", kube.registry, "--insecure-registry", kube.registry, "--build-ca",
        str(HOST_CA_BUNDLE)), env=kube.env())
    started.wait_for_line("==> build: kaniko Job in in-cluster", timeout=600)
    started.wait_for_line("Job todo-backend-kaniko-", timeout=300)
    inner = re.search(r"Job todo-backend-kaniko-(\w+) in ", "".join(started.out)).group(1)
    assert wait_for(lambda: kube.leftovers(inner)["jobs"], timeout=60), "the run's kaniko Job exists"
    outer = _submitted("".join(started.out))
    core = client.CoreV1Api(kube.admin())
    (pod,) = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name=todo-backend-pipeline-{outer}").items
    core.delete_namespaced_pod(pod.metadata.name, NAMESPACE, grace_period_seconds=0)
    err = started.finish(300)
    assert started.proc.returncode != 0
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "was deleted while pipeline ran" in errors[0], err
    assert wait_for(lambda: kube.leftovers(inner) == {"jobs": [], "pods": [], "secrets": []}, timeout=120), \
        kube.leftovers(inner)
    assert kube.leftovers(outer) == {"jobs": [], "pods": [], "secrets": []}


def test_the_kaniko_jobs_deadline_in_the_pod_is_its_line_and_leaves_nothing(pipeline, kube, pipeline_image, team):
    proc = pipeline.run(*_submit_args(
        kube, pipeline_image, team, "--repo", "todo-backend-deadline", "--kaniko-image", kube.executor,
        "--registry-mirror", kube.registry, "--insecure-registry", kube.registry, "--job-deadline", "6"),
        env=kube.env(), timeout=900)
    assert proc.returncode != 0
    (line,) = _error_lines(proc)
    assert "exited" in line and "activeDeadlineSeconds (6 s)" in line and "--job-deadline" in line, line
    inner = re.search(r"Job todo-backend-kaniko-(\w+) in ", proc.stdout).group(1)
    for rid in (inner, _submitted(proc.stdout)):
        assert wait_for(lambda r=rid: kube.leftovers(r) == {"jobs": [], "pods": [], "secrets": []}, timeout=60), \
            kube.leftovers(rid)


def test_a_verify_failure_in_the_pod_moves_no_tag_and_leaves_nothing(pipeline, kube, pipeline_image, team, tmp_path):
    """A commit whose /health answers another body: built by the Job, verify in the pod fails, nothing is
    proved or promoted, and submit ends with the pipeline's exit code."""
    bare = Path(kube.facts.dir) / "git/todo.git"
    tree = tmp_path / "broken"
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "clone", "-q", "-b", "ci", str(bare), str(tree)], check=True)
    health = tree / "backend/app/api/routes/health.py"
    health.write_text(health.read_text().replace('{"status": "healthy"}', '{"status": "fine"}'))
    subprocess.run([*git, "commit", "-qam", "test: /health answers another body"], check=True)
    # A branch of its own: the cluster's git server is the session's, and test_cluster_e2e pushes "broken" too
    subprocess.run([*git, "push", "-q", "-f", "origin", "HEAD:refs/heads/broken-health-in-pod"], check=True)
    (tree / ".venv").symlink_to(ROOT / ".venv")  # the same lock: this checkout's venv serves it
    repo = "todo-backend-broken-in-pod"
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "build/pipeline.py", *_submit_args(
            kube, pipeline_image, team, "--repo", repo, "--kaniko-image", kube.executor, "--registry-mirror",
            kube.registry, "--insecure-registry", kube.registry, "--build-ca", str(HOST_CA_BUNDLE),
            "--report", str(tmp_path / "r.json"))],
        # the advisory records of the commit it submits (submit refuses a path the pod's clone lacks)
        cwd=tree, env={**kube.env(), "IMAGEPIPE_VULN_DB": str(tree / "tests/fixtures/osv/pypa")},
        capture_output=True, text=True, timeout=2400)
    print(proc.stdout[-5000:], proc.stderr[-2000:])
    assert proc.returncode == 1, proc.stderr
    (line,) = _error_lines(proc)
    assert "the pipeline in Job todo-backend-pipeline-" in line and "exited 1" in line, line
    assert "verification failed: latest was not moved" in proc.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is False and "kubernetes" not in report and "signature" not in report
    assert {c["id"] for c in report["checks"] if not c["passed"]} >= {"health-endpoint"}
    latest = subprocess.run(["skopeo", "inspect", f"docker://{kube.registry}/{repo}:latest"], capture_output=True,
                            text=True, timeout=120)
    assert latest.returncode != 0 and "manifest unknown" in latest.stderr, "no latest tag was made"
    # the failed run's Job is deleted, and with its pod what that pod owned: the kaniko Job, its pod
    inner = re.search(r"Job todo-backend-kaniko-(\w+) in ", proc.stdout).group(1)
    for rid in (inner, _submitted(proc.stdout)):
        assert wait_for(lambda r=rid: kube.leftovers(r) == {"jobs": [], "pods": [], "secrets": []}, timeout=120), \
            kube.leftovers(rid)
