"""Helpers for the end-to-end tests: run `python build/pipeline.py` as a user would, read registry tags."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The kaniko layer cache shared by every kaniko build of the suite that need not be cold (its keys are
# content hashes): only the first build of a tree in a registry is cold.
WARM_CACHE = "kaniko-warm/cache"


class Pipeline:
    def __init__(self, state: Path, registry: str, sigserver_port: int | None = None) -> None:
        self.state, self.registry = state, registry
        self.sigserver_port = sigserver_port

    def argv(self, *args: str) -> list[str]:
        # The session's state directory and its ports, unless the test names a state directory (whose runs
        # claim ports of their own) or a registry or port itself.
        own_state = "--state-dir" in args
        named = own_state or any(a.startswith(("--registry", "--embedded-port")) for a in args)
        registry = [] if named else ["--embedded-port", self.registry.rsplit(":", 1)[1]]
        state = [] if own_state else ["--state-dir", str(self.state)]
        sig = ["--sigserver-port", str(self.sigserver_port)] if self.sigserver_port and not own_state else []
        return [sys.executable, str(ROOT / "build/pipeline.py"), *args, *state, *registry, *sig]

    def run(self, *args: str, timeout: float = 2400, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
        print(proc.stdout[-6000:], proc.stderr[-4000:], sep="\n")
        return proc

    def digest(self, tag: str, repo: str = "todo-backend") -> str | None:
        proc = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{self.registry}/{repo}:{tag}"],
                              capture_output=True, text=True)
        return json.loads(proc.stdout)["Digest"] if proc.returncode == 0 else None


_CLIENT_WORK = None


def registry_client(registry: str, repo: str):  # noqa: ANN201 - imagepipe.supplychain.referrers.Registry
    """Our registry client for a test's reads and tampering: anonymous, reached as the pipeline reaches it."""
    import tempfile

    from imagepipe.registry import oci
    from imagepipe.registry.access import open_access
    from imagepipe.registry.auth import RegistryAuth

    global _CLIENT_WORK
    if _CLIENT_WORK is None:  # one directory for the session's clients, removed when the interpreter exits
        _CLIENT_WORK = tempfile.TemporaryDirectory(prefix="imagepipe-t-")
    work = Path(tempfile.mkdtemp(dir=_CLIENT_WORK.name))
    access = open_access(RegistryAuth(registry), tls_verify=True, work=work, stage="test")
    return oci.Registry(access, repo, stage="test")


def stop_processes_under(path: Path) -> list[str]:
    """Terminates (then kills) every process whose command line names `path`: the servers a pipeline run
    left for a state directory of a test's own, when `registry stop` could not (a full disk). Returns
    what was stopped."""
    import psutil

    mine = {psutil.Process().pid, *(p.pid for p in psutil.Process().parents())}
    found = [p for p in psutil.process_iter(["cmdline"])
             if p.pid not in mine and str(path) in " ".join(p.info["cmdline"] or [])]
    for proc in found:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(found, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    return [" ".join(p.info["cmdline"] or []) for p in found]
