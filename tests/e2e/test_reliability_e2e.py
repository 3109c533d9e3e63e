"""Bad input and faults, with the real tools: one clear line, the stage's exit code, and nothing half-done
(no dangling containers, no tag on an unverified image, registry data intact)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import bcrypt
import pytest
import requests
from pipeline_support import ROOT, stop_processes_under

from imagepipe.exec import runner
from imagepipe.registry.embedded import EmbeddedRegistry
from imagepipe.services.postgres import free_port

pytestmark = pytest.mark.e2e


def one_line_error(proc: subprocess.CompletedProcess[str], text: str) -> None:
    first = proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else ""
    assert first.startswith("error: ") and text in first, proc.stderr
    assert "Traceback" not in proc.stderr


def context_copy(tmp_path: Path, *, drop: str | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ignore = ["__pycache__", *([drop] if drop else [])]
    shutil.copytree(ROOT / "backend", ctx, ignore=shutil.ignore_patterns(*ignore))
    return ctx


def verify_containers(image: str) -> list[str]:
    """verify's containers of `image` (by its digest: the other lane's verifies run other images)."""
    out = runner.run(["nsenter", "--mount=/run/imagepipe/podman-mntns", "--", "podman", "ps", "-a", "--format",
                      "{{.Names}} {{.Image}}"], ok_codes=(0, 1, 125)).stdout \
        if Path("/run/imagepipe/podman-mntns").exists() \
        else runner.run(["podman", "ps", "-a", "--format", "{{.Names}} {{.Image}}"]).stdout
    digest = image.split("@", 1)[1]
    return [ln for ln in out.splitlines() if ln.startswith("imagepipe-verify") and digest in ln]


@pytest.mark.parametrize("missing", ["app", "agents", "mcp", "requirements.txt"])
def test_incomplete_context_is_refused(pipeline, tmp_path, missing):
    proc = pipeline.run("build", "--context", str(context_copy(tmp_path, drop=missing)))
    assert proc.returncode == 2
    one_line_error(proc, missing)


def test_unresolvable_requirement_fails_the_build_stage(pipeline, tmp_path):
    ctx = context_copy(tmp_path)
    with open(ctx / "requirements.txt", "a") as f:
        f.write("no-such-package-imagepipe-test==0.0.1\n")
    proc = pipeline.run("build", "--context", str(ctx), "--repo", "todo-backend-badreq")
    assert proc.returncode == 13
    one_line_error(proc, "requirements.txt")
    assert "no-such-package-imagepipe-test" in proc.stderr


def test_base_image_that_does_not_exist(pipeline):
    proc = pipeline.run("base", "--base-image", "localhost:1/no-such/image:1")
    assert proc.returncode == 11
    one_line_error(proc, "cannot be pulled")


def test_unreachable_registry(pipeline, green):
    proc = pipeline.run("push", "--registry", "registry.invalid:5000")
    assert proc.returncode == 14
    one_line_error(proc, "unreachable")


def test_registry_port_taken_by_something_else(pipeline, green):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = pipeline.run("push", "--embedded-port", str(port))
    assert proc.returncode == 17
    # the port, what holds it (this test's own process, by its pid and its name as psutil reads it: an xdist
    # worker renames itself) and the option that moves it; never a raw tool error
    import psutil

    one_line_error(proc, f"port {port} is taken by {psutil.Process().name()} (pid {os.getpid()})")
    assert "--embedded-port" in proc.stderr


def test_a_named_registry_is_never_replaced_by_an_embedded_one(pipeline, green):
    """A loopback address where nothing listens: exit 14 and one line, and no registry started there."""
    port = free_port()
    proc = pipeline.run("push", "--registry", f"127.0.0.1:{port}")
    assert proc.returncode == 14
    one_line_error(proc, "unreachable")
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "nothing may listen there afterwards"


@pytest.fixture
def auth_registry(tmp_path):
    """A registry that requires basic auth (htpasswd), as a team's private registry would."""
    port = free_port()
    (tmp_path / "htpasswd").write_text("ci:" + bcrypt.hashpw(b"good-pass", bcrypt.gensalt()).decode() + "\n")
    (tmp_path / "config.yml").write_text(
        f"version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
        f"auth: {{htpasswd: {{realm: test, path: {tmp_path / 'htpasswd'}}}}}\n")
    pid = runner.spawn(["docker-registry", "serve", str(tmp_path / "config.yml")], log_path=tmp_path / "log")
    time.sleep(1)
    yield f"127.0.0.1:{port}"
    os.kill(pid, signal.SIGTERM)


def test_registry_refusing_credentials(pipeline, green, auth_registry):
    proc = pipeline.run("push", "--registry", auth_registry, "--creds", "ci:wrong")
    assert proc.returncode == 14
    one_line_error(proc, "refused the credentials")
    catalog = requests.get(f"http://{auth_registry}/v2/_catalog", auth=("ci", "good-pass"), timeout=10)
    assert catalog.status_code == 200 and catalog.json()["repositories"] == [], "nothing pushed after a refusal"
    ok = pipeline.run("push", "--registry", auth_registry, "--creds", "ci:good-pass")
    assert ok.returncode == 0, ok.stderr


def test_missing_tools_with_no_provision(pipeline, green):
    env = {**os.environ, "PATH": "/nonexistent"}
    proc = pipeline.run("build", "--no-provision", env=env)
    assert proc.returncode == 13
    one_line_error(proc, "buildah is not installed")


def test_unusable_state_directory(pipeline):
    proc = pipeline.run("lint", "--state-dir", "/etc/hostname/state")
    assert proc.returncode == 2
    one_line_error(proc, "cannot use the state directory")


def test_two_runs_at_once_are_serialised(pipeline):
    pipeline.state.mkdir(parents=True, exist_ok=True)
    with open(pipeline.state / "pipeline.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.Popen(pipeline.argv("registry", "status"), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        # released only once the second run says it waits (no sleep: on a loaded machine its start-up alone
        # can outlast any fixed delay, and it would then find the lock free)
        said: list[str] = []
        reader = threading.Thread(target=lambda: said.extend(iter(proc.stderr.readline, "")), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while not any("waiting for another pipeline run" in line for line in said) and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, f"the second run did not wait for the lock: {''.join(said)}"
        assert any("waiting for another pipeline run" in line for line in said), "it says why it waits"
        fcntl.flock(held, fcntl.LOCK_UN)
        assert proc.wait(timeout=60) == 0, "it runs once the lock is free"
    reader.join(timeout=10)


def test_container_dying_during_verify_is_reported_with_its_log(pipeline, green, tmp_path):
    variant = tmp_path / "Containerfile"
    crash = 'CMD ["python", "-c", "import sys; print(\'boom: cannot start\', file=sys.stderr); sys.exit(3)"]'
    text = (ROOT / "build/Containerfile").read_text()
    start = text.index('CMD ["uvicorn"')
    variant.write_text(text[:start] + crash + "\n")
    args = ("--containerfile", str(variant), "--repo", "todo-backend-crash")
    assert pipeline.run("build", *args).returncode == 0
    assert pipeline.run("push", *args).returncode == 0
    image = json.loads((pipeline.state / "last-push.json").read_text())["image"]
    proc = pipeline.run("verify", image, "--report", str(tmp_path / "r.json"))
    assert proc.returncode == 1
    checks = {c["id"]: c for c in json.loads((tmp_path / "r.json").read_text())["checks"]}
    assert not checks["startup-time"]["passed"]
    assert "exited" in checks["startup-time"]["detail"] and "boom: cannot start" in checks["startup-time"]["detail"]
    assert checks["user"]["passed"] and checks["size"]["passed"], "static checks still report"
    assert "@sha256:" in image
    assert verify_containers(image) == [], "verify leaves no containers behind"


def test_push_survives_a_registry_restart(pipeline, green, tmp_path):
    """The registry is killed while `buildah push` runs and stays down until the pipeline says the attempt
    failed; then it comes back: the next attempt completes (exit 0), `latest` is untouched and the registry's
    data intact."""
    import psutil

    latest = pipeline.digest("latest")
    ctx = context_copy(tmp_path)
    (ctx / "app" / "fault_marker.py").write_text("FAULT = 1\n")
    args = ("--context", str(ctx), "--repo", "todo-backend-fault")
    assert pipeline.run("build", *args).returncode == 0
    registry = EmbeddedRegistry(pipeline.state, pipeline.registry)
    proc = subprocess.Popen(pipeline.argv("push", *args), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    killed, restarted, out = threading.Event(), threading.Event(), []

    def pushing() -> bool:
        # this test's push: the other lane pushes to registries of its own
        return any(p.info["name"] == "buildah" and "push" in (p.info["cmdline"] or [])
                   and pipeline.registry in " ".join(p.info["cmdline"] or [])
                   for p in psutil.process_iter(["name", "cmdline"]))

    def kill_when_buildah_pushes() -> None:
        deadline = time.monotonic() + 300
        while not killed.is_set() and time.monotonic() < deadline and proc.poll() is None:
            pid = registry.pid()
            if pid and pushing():
                os.kill(pid, signal.SIGKILL)
                killed.set()
            time.sleep(0.05)

    def follow() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if line.startswith("==> push:"):
                threading.Thread(target=kill_when_buildah_pushes, daemon=True).start()
            if "push attempt 1 failed" in line and killed.is_set() and not restarted.is_set():
                registry.ensure_running()
                restarted.set()

    watcher = threading.Thread(target=follow)
    watcher.start()
    proc.wait(timeout=600)
    watcher.join(timeout=30)
    err = proc.stderr.read() if proc.stderr else ""
    assert killed.is_set(), "the registry was killed during buildah push"
    assert restarted.is_set(), "the first attempt failed and said so: " + "".join(out)[-2000:]
    assert proc.returncode == 0, err
    assert "pushed " in "".join(out)
    assert pipeline.digest("latest") == latest, "latest untouched"
    assert pipeline.digest(json.loads((pipeline.state / "last-push.json").read_text())["tag"].rsplit(":", 1)[1],
                           repo="todo-backend-fault"), "the retried push is in the registry"
    registry.ensure_running()
    assert pipeline.digest("latest") == latest, "the registry's data survived the kill"


@pytest.mark.parametrize(("old", "new", "rule"), [
    ("ARG WHEELHOUSE=none", "ARGG WHEELHOUSE=none", "SYNTAX"),
    ("COPY --from=builder /rootfs/ /", "COPY --from=nosuchstage /rootfs/ /", "SYNTAX"),
])
def test_malformed_containerfile_stops_at_lint(pipeline, tmp_path, old, new, rule):
    bad = tmp_path / "Containerfile"
    bad.write_text((ROOT / "build/Containerfile").read_text().replace(old, new))
    proc = pipeline.run("--no-provision", "--containerfile", str(bad), "--repo", "todo-backend-malformed")
    assert proc.returncode == 12
    one_line_error(proc, f"{rule}:")
    assert "==> build" not in proc.stdout, "nothing is built from a malformed file"


def test_full_disk_under_the_state_directory(pipeline, green, tmp_path):
    """The registry's data directory runs out of space mid-push: exit 14, one line, nothing tagged there."""
    state = tmp_path / "tiny-state"
    state.mkdir()
    runner.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(state)])
    port = str(free_port())
    try:
        proc = pipeline.run("push", "--state-dir", str(state), "--embedded-port", port, timeout=900)
        assert proc.returncode == 14, proc.stderr
        one_line_error(proc, "[push]")
        tags = requests.get(f"http://127.0.0.1:{port}/v2/todo-backend/tags/list", timeout=10)
        assert tags.status_code == 404 or not tags.json().get("tags"), tags.text
    finally:
        pipeline.run("registry", "stop", "--state-dir", str(state), "--embedded-port", port)
        stop_processes_under(state)  # `registry stop` may itself find no room to work in
        runner.run(["umount", "-l", str(state)], ok_codes=(0, 1, 32))
