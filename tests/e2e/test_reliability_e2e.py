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
from pipeline_support import ROOT

from imagepipe import runner
from imagepipe.services.postgres import free_port
from imagepipe.services.registry import EmbeddedRegistry

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


def no_verify_containers() -> bool:
    out = runner.run(["nsenter", "--mount=/run/imagepipe/podman-mntns", "--", "podman", "ps", "-a", "--format",
                      "{{.Names}}"], ok_codes=(0, 1, 125)).stdout if Path("/run/imagepipe/podman-mntns").exists() \
        else runner.run(["podman", "ps", "-a", "--format", "{{.Names}}"]).stdout
    return not [n for n in out.split() if n.startswith("imagepipe-verify")]


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
    # the port, what holds it (this test's own process) and the option that moves it; never a raw tool error
    one_line_error(proc, f"port {port} is taken by python")
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
    check = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", "--creds", "ci:good-pass",
                            f"docker://{auth_registry}/todo-backend"], capture_output=True, text=True)
    assert check.returncode != 0 or json.loads(check.stdout)["Tags"] == [], "no tag after a refused push"
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
        time.sleep(3)
        assert proc.poll() is None, "the second run waits for the lock"
        fcntl.flock(held, fcntl.LOCK_UN)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "waiting for another pipeline run" in err


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
    assert no_verify_containers(), "verify leaves no containers behind"


def test_push_survives_a_registry_restart(pipeline, green, tmp_path):
    """The registry is killed as the push starts and comes back a second later: the push is retried and
    completes, or fails cleanly; either way `latest` is untouched and the registry's data intact."""
    latest = pipeline.digest("latest")
    ctx = context_copy(tmp_path)
    (ctx / "app" / "fault_marker.py").write_text("FAULT = 1\n")
    args = ("--context", str(ctx), "--repo", "todo-backend-fault")
    assert pipeline.run("build", *args).returncode == 0
    registry = EmbeddedRegistry(pipeline.state, pipeline.registry)
    proc = subprocess.Popen(pipeline.argv("push", *args), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    killed = threading.Event()

    def fault() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("==> push:") and not killed.is_set():
                pid = registry.pid()
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    killed.set()
                    time.sleep(1)
                    registry.ensure_running()

    watcher = threading.Thread(target=fault)
    watcher.start()
    proc.wait(timeout=600)
    watcher.join(timeout=30)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode in (0, 14), err
    if proc.returncode == 14:
        assert err.startswith("error: [push]")
    assert killed.is_set()
    assert pipeline.digest("latest") == latest, "latest untouched"
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
    """The registry's data directory runs out of space mid-push: exit 14, one line, nothing promoted."""
    state = tmp_path / "tiny-state"
    state.mkdir()
    runner.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(state)])
    port = str(free_port())
    try:
        proc = pipeline.run("push", "--state-dir", str(state), "--embedded-port", port, timeout=900)
        assert proc.returncode in (2, 14), proc.stderr
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    finally:
        pipeline.run("registry", "stop", "--state-dir", str(state), "--embedded-port", port)
        runner.run(["umount", "-l", str(state)], ok_codes=(0, 1, 32))
