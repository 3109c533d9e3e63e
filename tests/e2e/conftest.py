"""Shared by the end-to-end tests: one state directory and embedded registry for the session, and one
green pipeline run the other tests compare against."""

from __future__ import annotations

import json

import pytest
from pipeline_support import Pipeline

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


