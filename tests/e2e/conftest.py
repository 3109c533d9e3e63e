"""Shared by the end-to-end tests: one state directory and embedded registry for the session, and one
green pipeline run the other tests compare against."""

from __future__ import annotations

import json
import os

import pytest
from pipeline_support import Pipeline

from imagepipe.host import quirks
from imagepipe.services.postgres import free_port


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    p = Pipeline(tmp_path_factory.mktemp("state"), f"127.0.0.1:{free_port()}", sigserver_port=free_port())
    yield p
    p.run("registry", "stop")


@pytest.fixture(scope="session")
def green(pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    proc = pipeline.run("--no-provision", "--report", str(out / "r.json"), "--junit", str(out / "r.xml"))
    return proc, json.loads((out / "r.json").read_text()), (out / "r.xml").read_text()


@pytest.fixture(scope="session")
def profile():
    p = quirks.detect()
    quirks.ensure_mount_namespace(p)
    return p


@pytest.fixture(scope="session")
def executor(profile):
    """The kaniko executor image: present, or pulled as the pipeline would pull it; the tests that need one
    are skipped, with the reason, where neither works (one of the suite's two allowed skips)."""
    from imagepipe.builders import kaniko
    from imagepipe.errors import PipelineError

    try:
        return kaniko.executor_image(profile, os.environ.get("IMAGEPIPE_KANIKO_IMAGE"))
    except PipelineError as e:
        pytest.skip(e.message)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, green):
    """A real single-node Kubernetes built here, with ci/rbac.yaml, the clone step's image, the base and this
    commit; skipped, with the reason, only where its binaries cannot be built. Torn down at the end of the
    session, and then nothing of it may be left on the host: its bridge, iptables rules, mounts, cgroups,
    processes and registries.conf.d entry, each seen while it ran. Tests whose Job never runs kaniko use it
    as it is."""
    from kube_support import prepare, serve_index, traces

    from imagepipe.cluster import binaries
    from imagepipe.cluster.local import LocalCluster

    reason = binaries.unavailable()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("kube")
    local = LocalCluster(work / "cluster")
    facts = local.up()
    down = False
    try:
        during = traces(facts, work)
        kube = prepare(facts, work)
        kube.local = local
        with serve_index(facts, tmp_path_factory.mktemp("debian-index")) as index:
            kube.debian_index = index
            yield kube
        down = local.down()
    finally:
        if not down:
            local.down()
    # the session's one cluster proves its own teardown (was a second cluster of test_cluster_e2e's)
    assert down, "the cluster was gone before its teardown"
    for kind in ("links", "rules", "mounts", "cgroups", "procs", "registries_d"):
        assert during[kind], f"no {kind} seen while the cluster ran: {during}"
    assert traces(facts, work) == {k: [] for k in during}, "nothing of the cluster is left on the host"


@pytest.fixture(autouse=True)
def cluster_alive(request):
    """A test on the cluster starts only while every process of the cluster runs: nothing restarts a dead
    kubelet, and each later test would wait out its timeout for pods that never start."""
    if "cluster" in request.fixturenames:
        stopped = request.getfixturevalue("cluster").local.stopped()
        if stopped:
            pytest.fail(f"the local cluster is down: {'; '.join(stopped)}", pytrace=False)
    yield


@pytest.fixture(scope="session")
def kube(cluster, executor):
    """The cluster with the kaniko executor in its registry: for the tests whose Job builds."""
    cluster.stock_executor(executor)
    return cluster
