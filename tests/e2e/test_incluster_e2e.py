"""verify inside the cluster, with nothing on a host: the pipeline's own image (`pipeline.py pipeline-image`,
ci/pipeline.Containerfile) runs `build/pipeline.py verify` in a pod of the local cluster, from a checkout of
this commit its clone step fetched, under ci/pipeline-job.yaml's security context. Every check passes there,
and no podman or buildah process runs on the host while it does (each one seen is in the cluster's cgroup)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from kube_support import NAMESPACE

from imagepipe.paths import ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pipeline_image(pipeline, kube) -> str:
    """The pipeline image, built here and pushed to the cluster's registry (set-up: before any count)."""
    proc = pipeline.run("pipeline-image", "--no-provision", "--registry", kube.registry, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def _cgroup(pid: int) -> str | None:
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    return next((line.split("::", 1)[1] for line in lines if line.startswith("0::")), "")


class HostTools:
    """Every podman and buildah process seen while it runs, with its cgroup and command line: polled from
    /proc."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[str, str]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.stop.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit() or int(proc.name) in self.seen:
                    continue
                try:
                    comm = (proc / "comm").read_text().strip()
                except OSError:
                    continue
                if comm in ("podman", "buildah"):
                    try:
                        argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    except OSError:
                        argv = comm
                    self.seen[int(proc.name)] = (_cgroup(int(proc.name)) or "?", argv[:200])
            time.sleep(0.1)

    def __enter__(self) -> HostTools:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def _pod(kube, image: str, backend: str) -> dict:
    """ci/pipeline-job.yaml's pod, running verify of `backend` instead of the whole job."""
    job = yaml.safe_load((ROOT / "ci/pipeline-job.yaml").read_text())
    pod = job["spec"]["template"]["spec"]
    clone = pod["initContainers"][0]
    clone["image"] = kube.git_image
    clone["env"] = [{"name": "GIT_URL", "value": kube.git_url}, {"name": "GIT_REF", "value": kube.commit},
                    {"name": "HOME", "value": "/workspace"}]
    main = pod["containers"][0]
    main["image"] = image
    # the cluster's registry speaks plain HTTP: the pod's containers tools are told so, as a user's would be
    trust = (f'printf \'[[registry]]\\nlocation = "{kube.registry}"\\ninsecure = true\\n\' '
             "> /etc/containers/registries.conf.d/90-cluster.conf")
    main["command"] = ["sh", "-c", f"{trust} && python3 build/pipeline.py verify --no-provision {backend} "
                       "--report /workspace/report.json; code=$?; echo; echo REPORT $(cat /workspace/report.json "
                       "| tr -d '\\n'); exit $code"]
    main.pop("args")
    # the suite's advisory source (tests/conftest.py), in the pod's clone
    main["env"] = [*main.get("env", []), {"name": "IMAGEPIPE_VULN_DB", "value": "tests/fixtures/osv/pypa"},
                   {"name": "IMAGEPIPE_VULN_DB_MAX_AGE", "value": os.environ["IMAGEPIPE_VULN_DB_MAX_AGE"]}]
    pod["serviceAccountName"] = "default"
    pod["automountServiceAccountToken"] = False  # verify needs no API access
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "imagepipe-verify-in-pod"}, "spec": pod}


def test_verify_runs_whole_inside_a_pod_with_nothing_on_the_host(pipeline, green, kube, pipeline_image):
    from kubernetes import client

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
    assert report["passed"] is True and len(report["checks"]) == 23
    assert [c["id"] for c in report["checks"] if not c["passed"]] == []
    inside = {pid: seen for pid, seen in tools.seen.items() if seen[0].startswith(cluster_cgroup)}
    assert inside, f"the sampler saw no podman in the cluster's cgroup {cluster_cgroup}: {tools.seen}"
    outside = {pid: seen for pid, seen in tools.seen.items() if pid not in inside}
    assert outside == {}, f"podman or buildah ran on the host: {outside}"
