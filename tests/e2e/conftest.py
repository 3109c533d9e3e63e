"""Shared by the end-to-end tests: one state directory and embedded registry for the session, and one
green pipeline run the other tests compare against."""

from __future__ import annotations

import json
import os

import pytest
from pipeline_support import Pipeline

from imagepipe import hostenv, podmanfacts
from imagepipe.builders import kanikojob
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
    p = hostenv.detect()
    hostenv.ensure_mount_namespace(p)
    return p


@pytest.fixture(scope="session")
def executor(profile):
    """The kaniko executor image; the tests that need one are skipped, with the reason, where it is absent."""
    ref = os.environ.get("IMAGEPIPE_KANIKO_IMAGE") or kanikojob.executor_image(kanikojob.load())
    if not podmanfacts.image_exists(profile, ref):
        pytest.skip(f"no kaniko executor image {ref} on this machine (set IMAGEPIPE_KANIKO_IMAGE or see "
                    "README 'kaniko' for how to supply one)")
    return ref


@pytest.fixture(scope="session")
def kube(tmp_path_factory, green):
    """A real single-node Kubernetes built here (skipped, with the reason, where its binaries cannot be built
    or no kaniko executor image is present), torn down at the end of the session."""
    import os

    from kube_support import prepare

    from imagepipe import hostenv
    from imagepipe.builders import kanikojob
    from imagepipe.cluster import binaries
    from imagepipe.cluster.local import LocalCluster

    reason = binaries.unavailable()
    if reason:
        pytest.skip(reason)
    executor = os.environ.get("IMAGEPIPE_KANIKO_IMAGE") or kanikojob.executor_image(kanikojob.load())
    if not podmanfacts.image_exists(hostenv.detect(), executor):
        pytest.skip(f"no kaniko executor image {executor} on this machine (see README 'kaniko')")
    work = tmp_path_factory.mktemp("kube")
    cluster = LocalCluster(work / "cluster")
    facts = cluster.up()
    try:
        yield prepare(facts, executor, work)
    finally:
        cluster.down()
