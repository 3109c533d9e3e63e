"""Shared by the end-to-end tests: one state directory and embedded registry for the session, and one
green pipeline run the other tests compare against."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagepipe.postgres import free_port

ROOT = Path(__file__).resolve().parents[2]


class Pipeline:
    def __init__(self, state: Path, registry: str) -> None:
        self.state, self.registry = state, registry

    def argv(self, *args: str) -> list[str]:
        registry = [] if any(a.startswith("--registry") for a in args) else ["--registry", self.registry]
        state = [] if "--state-dir" in args else ["--state-dir", str(self.state)]
        return [sys.executable, str(ROOT / "build/pipeline.py"), *args, *state, *registry]

    def run(self, *args: str, timeout: float = 2400, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
        print(proc.stdout[-6000:], proc.stderr[-4000:], sep="\n")
        return proc

    def digest(self, tag: str, repo: str = "todo-backend") -> str | None:
        proc = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{self.registry}/{repo}:{tag}"],
                              capture_output=True, text=True)
        return json.loads(proc.stdout)["Digest"] if proc.returncode == 0 else None


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    p = Pipeline(tmp_path_factory.mktemp("state"), f"127.0.0.1:{free_port()}")
    yield p
    p.run("registry", "stop")


@pytest.fixture(scope="session")
def green(pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    proc = pipeline.run("--no-provision", "--report", str(out / "r.json"), "--junit", str(out / "r.xml"))
    return proc, json.loads((out / "r.json").read_text()), (out / "r.xml").read_text()


