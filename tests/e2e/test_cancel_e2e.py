"""Cancellation with real processes: SIGTERM in each stage stops the run within 10 s, exit 143, with its
tools stopped, its containers and throw-away PostgreSQL gone, the lock free and `latest` unmoved; a SIGKILLed
run's leftovers are removed by the next run; the throw-away database listens on loopback and the container
gateway only."""

from __future__ import annotations

import fcntl
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pipeline_support import ROOT
from registries_support import HoldingProxy

from imagepipe.exec import cmdline, retry, runner
from imagepipe.host import quirks

pytestmark = pytest.mark.e2e
PROFILE = quirks.detect()


def podman(*args: str) -> str:
    return runner.run(cmdline.podman(PROFILE, *args), ok_codes=(0, 125)).stdout


def run_containers(run_id: str) -> list[str]:
    """The containers of one pipeline run (each carries its run's label; the other lane's runs have theirs)."""
    return podman("ps", "-a", "-q", "--filter", f"label=io.imagepipe.run={run_id}").split()


def postgres_dirs() -> set[str]:
    """Data directories of the throw-away PostgreSQL servers running now."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"postgres") and b"-D" in cmd:
            found.add(cmd[cmd.index(b"-D") + 1].decode())
    return found


def lock_is_free(state: Path) -> bool:
    with open(state / "pipeline.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
    return True


class Started:
    """A pipeline run in the background whose output is read by threads, so waiting for a line honours its
    timeout (a bare readline blocks for as long as the run is silent) and neither pipe fills up."""

    def __init__(self, pipeline, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(pipeline.argv(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, **(env or {})})
        self.state = pipeline.state
        self.last_marker: dict = {}
        self.out: list[str] = []
        self.err: list[str] = []
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.readers = [threading.Thread(target=self._read_out, daemon=True),
                        threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read_out(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)  # the end of the run's output

    def wait_for_line(self, needle: str, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self.finish(30)
                raise AssertionError(f"the run ended before {needle!r}:\n{''.join(self.out)}\n{''.join(self.err)}")
            self.out.append(line)
            if needle in line:
                return
        raise AssertionError(f"no {needle!r} within {timeout} s:\n{''.join(self.out)[-3000:]}")

    def marker(self) -> dict:
        """This run's marker, read while it runs: its id (its containers' label) and the PostgreSQL data and
        temp directories it started. So the test looks at this run's own resources, whatever else runs on
        the host (the other lane's runs)."""
        for path in (self.state / "runs").glob("*.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # replaced whole, but it may be gone between the glob and the read
            if data.get("pid") == self.proc.pid:
                return data
        return {}

    def wait_for_resources(self, *, postgres: bool = True) -> dict:
        """Waits until the run has a container and (unless told not to) a throw-away PostgreSQL of its own;
        returns its marker as it is then."""
        def started() -> bool:
            mark = self.marker()
            return bool(mark) and bool(run_containers(mark["id"])) and (not postgres or bool(mark["postgres"]))

        wait_until(started)
        mark = self.marker()
        assert set(mark["postgres"]) <= postgres_dirs(), "the marker names the servers' data directories as -D"
        return mark

    def finish(self, timeout: float) -> str:
        """Waits for the run to end and its pipes to drain; returns its stderr."""
        self.proc.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=10)
        return "".join(self.err)

    def kill(self) -> dict:
        """SIGKILL; returns the run's marker as it was a moment before (all it had started)."""
        mark = self.marker()
        assert mark, "the run has its marker"
        self.proc.kill()
        self.finish(30)
        return mark

    def signal(self, sig: int) -> tuple[int, float, str]:
        self.last_marker = self.marker()  # all the run has started: it runs until the signal
        assert self.last_marker, "the run has its marker"
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        seconds = time.monotonic() - t0
        return self.proc.returncode, seconds, self.finish(30)


def wait_until(predicate, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def assert_clean(pipeline, mark: dict, latest: str | None) -> None:
    """Nothing the run's marker named is left: its containers, its throw-away PostgreSQL servers, its temp
    directories; the lock is free and `latest` unmoved."""
    assert run_containers(mark["id"]) == [], "no container of the run is left"
    assert not postgres_dirs() & set(mark.get("postgres", [])), "no throw-away PostgreSQL of the run is alive"
    assert [d for d in mark.get("temp_dirs", []) if Path(d).exists()] == [], "the run's temp directories are gone"
    assert lock_is_free(pipeline.state)
    assert list((pipeline.state / "runs").glob("*.json")) == [], "the run's marker is gone"
    assert pipeline.digest("latest") == latest, "latest is unmoved"


def one_interrupted_line(err: str, stage: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith(f"interrupted by SIGTERM during the {stage} stage"), err
    assert "Traceback" not in err


def step_containerfile(tmp_path: Path, marker: str) -> Path:
    """Our Containerfile with a long build step of its own (a cached step would not run at all)."""
    variant = tmp_path / f"Containerfile.{marker}"
    variant.write_text((ROOT / "build/Containerfile").read_text().replace(
        "ARG WHEELHOUSE=none", f"ARG WHEELHOUSE=none\nRUN echo {marker} && sleep 120", 1))
    return variant


def step_processes(marker: str) -> list[str]:
    """Processes of the build step (buildah's chroot runtime, its shell, its sleep), found by the step's
    marker or by a sleep whose parent is one of them."""
    ps = subprocess.run(["ps", "-eww", "-o", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 2) for line in ps.splitlines() if len(line.split(None, 2)) == 3]
    ours = {pid for pid, _, args in rows if marker in args}
    return [args for pid, ppid, args in rows if pid in ours or (ppid in ours and args.startswith("sleep 120"))]


@pytest.mark.parametrize("stage", ["build", "verify"])
def test_sigterm_in_a_stage(pipeline, green, tmp_path, stage):
    latest = pipeline.digest("latest")
    args = ["--no-provision"]
    marker = os.urandom(8).hex()
    if stage == "build":  # a build step that runs for a while, so SIGTERM reaches buildah mid-step
        args += ["--containerfile", str(step_containerfile(tmp_path, marker))]
    run = Started(pipeline, *args)
    run.wait_for_line(f"==> {stage}:")
    if stage == "build":
        wait_until(lambda: any(p.startswith("sleep 120") for p in step_processes(marker)))
    else:
        run.wait_for_resources()
    code, seconds, err = run.signal(signal.SIGTERM)
    assert code == 143, err
    assert seconds < 10, f"stopped in {seconds:.1f} s"
    one_interrupted_line(err, stage)
    assert_clean(pipeline, run.last_marker, latest)
    if stage == "build":
        assert step_processes(marker) == [], "buildah's step was stopped"


def tool_processes(needle: str) -> list[str]:
    """skopeo, buildah or podman processes whose command line names `needle`."""
    ps = subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True, text=True).stdout.splitlines()
    return [p for p in ps if needle in p and p.split()[0].rsplit("/", 1)[-1] in ("skopeo", "buildah", "podman")]


def test_sigterm_in_a_running_push(pipeline, green, tmp_path):
    """The signal lands while the push's tool waits on the registry's answer to a blob upload (a proxy holds
    it): the tool is stopped, no tag of the repository exists, the rest is clean."""
    latest = pipeline.digest("latest")
    proxy = HoldingProxy(pipeline.registry, hold=lambda method, path: method == "POST" and "/blobs/uploads/" in path)
    repo = f"todo-backend-cancel-{os.urandom(4).hex()}"
    try:
        run = Started(pipeline, "--no-provision", "--registry", proxy.addr, "--repo", repo)
        run.wait_for_line("==> push:")
        assert proxy.held.wait(300), f"no blob upload reached the registry: {proxy.seen}"
        assert tool_processes(proxy.addr), "the push's tool is running"
        code, seconds, err = run.signal(signal.SIGTERM)
    finally:
        proxy.stop()
    assert code == 143, err
    assert seconds < 10, f"stopped in {seconds:.1f} s"
    one_interrupted_line(err, "push")
    assert tool_processes(proxy.addr) == [], "the push's tool was stopped"
    assert pipeline.digest("latest", repo=repo) is None and repo_tags(pipeline, repo) == []
    assert_clean(pipeline, run.last_marker, latest)


def test_sigterm_in_a_running_promote_puts_the_moved_tag_back(pipeline, green, tmp_path):
    """A verified variant's promotion with a second tag: `latest` has moved to the variant when the signal
    lands, while the registry holds the second tag's manifest; the promotion puts `latest` back on the
    digest it named before."""
    latest = pipeline.digest("latest")
    ctx = tmp_path / "backend"
    shutil.copytree(ROOT / "backend", ctx, ignore=shutil.ignore_patterns("__pycache__"))
    (ctx / "app" / "cancel_marker.py").write_text(f"MARKER = {tmp_path.name!r}\n")
    # its layers in the registry first: the promotion's run then pushes only a manifest through the proxy
    assert pipeline.run("build", "--no-provision", "--context", str(ctx)).returncode == 0
    assert pipeline.run("push", "--no-provision", "--context", str(ctx)).returncode == 0
    proxy = HoldingProxy(pipeline.registry, hold=lambda method, path: method == "PUT" and
                         path.endswith("/manifests/cancel-held"))
    try:
        run = Started(pipeline, "--no-provision", "--registry", proxy.addr, "--context", str(ctx), "--tag",
                      "cancel-held")
        run.wait_for_line("==> promote:", timeout=900)
        assert proxy.held.wait(300), f"the second tag never reached the registry: {proxy.seen}"
        moved = pipeline.digest("latest")
        code, seconds, err = run.signal(signal.SIGTERM)
    finally:
        proxy.stop()
    assert moved not in (None, latest), "latest had moved to the variant when the signal landed"
    assert code == 143, err
    assert seconds < 10, f"stopped in {seconds:.1f} s"
    one_interrupted_line(err, "promote")
    assert pipeline.digest("cancel-held") is None
    assert_clean(pipeline, run.last_marker, latest)


def repo_tags(pipeline, repo: str) -> list[str]:
    proc = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{pipeline.registry}/{repo}"],
                          capture_output=True, text=True)
    return json.loads(proc.stdout)["Tags"] if proc.returncode == 0 else []


@pytest.fixture
def busy_machine(tmp_path):
    """Both cores busy and the disk written, as on a loaded CI machine (bounded: killed after the test)."""
    loops = ["while :; do :; done"] * 2 + [
        f"while :; do dd if=/dev/zero of={tmp_path}/hog bs=1M count=256 conv=fsync status=none; done"]
    # each in a group of its own, killed whole afterwards (killing `timeout` alone would leave its shell)
    hogs = [subprocess.Popen(["timeout", "600", "sh", "-c", loop], start_new_session=True) for loop in loops]
    yield
    for hog in hogs:
        os.killpg(hog.pid, signal.SIGKILL)
        hog.wait()


ROUNDS = int(os.environ.get("IMAGEPIPE_CANCEL_ROUNDS", "3"))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_sigterm_in_a_build_step_on_a_busy_machine(pipeline, green, tmp_path, busy_machine, round_):
    """The step's processes die with the run, whether TERM lands as the step starts or while it runs."""
    marker = os.urandom(8).hex()
    run = Started(pipeline, "build", "--no-provision", "--containerfile", str(step_containerfile(tmp_path, marker)))
    run.wait_for_line("==> build:")
    wait_until(lambda: step_processes(marker) != [])  # the step's runtime exists: its shell may not yet
    time.sleep(0.3 * round_)
    code, seconds, err = run.signal(signal.SIGTERM)
    assert code == 143, err
    assert seconds < 10, f"stopped in {seconds:.1f} s"
    # the step's group was SIGKILLed before the run exited; a killed process in uninterruptible I/O (the
    # disk hog's fsyncs) leaves /proc only once that I/O ends, so it is given 10 s to be gone: a step that
    # was never killed (its `sleep 120`) is still there after them
    assert retry.wait_until(lambda: step_processes(marker) == [], timeout=10, interval=0.2), \
        f"no process of the step is left: {step_processes(marker)}"
    assert run_containers(run.last_marker["id"]) == [] and lock_is_free(pipeline.state)
    assert list((pipeline.state / "runs").glob("*.json")) == []


def test_sigkill_leftovers_are_removed_by_the_next_run(pipeline, green, tmp_path):
    latest = pipeline.digest("latest")
    run = Started(pipeline, "--no-provision")
    run.wait_for_line("==> verify:")
    run.wait_for_resources()
    mark = run.kill()
    tls = [d for d in mark["temp_dirs"] if Path(d).name.startswith("imagepipe-tls-")]
    assert tls and all(Path(d).is_dir() for d in tls), f"the killed run's verify made its TLS directory: {mark}"
    assert run_containers(mark["id"]), "a SIGKILLed run leaves its containers (nothing can catch SIGKILL)"
    assert set(mark["postgres"]) & postgres_dirs(), "and its throw-away PostgreSQL"
    proc = pipeline.run("lint", "--no-provision")  # any run that takes the state directory's lock cleans up
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"cleaned up after interrupted run \w+: \d+ container\(s\), 1 throw-away PostgreSQL", proc.stdout)
    assert_clean(pipeline, mark, latest)  # the TLS directory included, and "the killed run moved no tag"


def test_throwaway_database_listens_on_loopback_and_the_gateway_only(pipeline, green):
    run = Started(pipeline, "verify", green[1]["image"])
    run.wait_for_line("==> verify:")
    new = set(run.wait_for_resources()["postgres"])
    gateway = podman("network", "inspect", "podman", "--format", "{{range .Subnets}}{{.Gateway}}{{end}}").strip()
    ss = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    pids = {pid for pid in os.listdir("/proc") if pid.isdigit() and _data_dir(pid) in new}
    listening = [line.split()[3] for line in ss.splitlines() if any(f"pid={p}," in line for p in pids)]
    hba = [ln.split() for ln in (Path(next(iter(new))) / "pg_hba.conf").read_text().splitlines()
           if ln.startswith("host")]
    run.signal(signal.SIGTERM)
    assert listening, ss
    hosts = {addr.rsplit(":", 1)[0] for addr in listening}
    assert hosts <= {"127.0.0.1", gateway}, hosts
    subnet = podman("network", "inspect", "podman", "--format", "{{range .Subnets}}{{.Subnet}}{{end}}").strip()
    assert hba, "pg_hba.conf has host lines (none would admit no one, and prove nothing here)"
    assert {line[3] for line in hba} <= {"127.0.0.1/32", "::1/128", subnet}, hba


def _data_dir(pid: str) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    return cmd[cmd.index(b"-D") + 1].decode() if b"-D" in cmd else ""


def test_sigterm_in_a_load_run_leaves_nothing(pipeline, green):
    run = Started(pipeline, "load")
    run.wait_for_line("==> load:")
    run.wait_for_resources(postgres=False)
    code, seconds, err = run.signal(signal.SIGTERM)
    assert code == 143 and seconds < 10, err
    mark = run.last_marker
    assert run_containers(mark["id"]) == [] and not postgres_dirs() & set(mark["postgres"])
    assert lock_is_free(pipeline.state)
