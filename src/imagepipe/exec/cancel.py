"""Cancellation, one mechanism for every stage.

SIGTERM, SIGINT and SIGHUP raise `Interrupted` in the main thread, so a cancelled run unwinds like a failed
one: the tool being run is stopped (runner.run), every `with`/`finally` of the stages runs (the throw-away
PostgreSQL, mounted images, temporary files), and the run's own cleanup stack removes whatever carries its
label (verify, bench and kaniko containers). The CLI then prints one line and exits 128 + the signal.

SIGKILL cannot be caught: each run keeps a marker in the state directory (its id and the PostgreSQL data
directories it started); the next run on that state directory, holding its lock and so knowing the
marker's run is dead, removes what the marker names before it starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from imagepipe.exec import exitcodes
from imagepipe.exec.retry import wait_until
from imagepipe.host.files import write_atomic

log = logging.getLogger("imagepipe.exec.cancel")

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
LABEL = "io.imagepipe.run"  # on every container a run starts


class Interrupted(BaseException):  # noqa: N818 - a BaseException, so `except Exception` never swallows it
    """The run was cancelled by a signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.name = signal.Signals(signum).name

    @property
    def exit_code(self) -> int:
        return exitcodes.SIGNAL_BASE + self.signum


_state: dict[str, Any] = {"signum": None, "unwinding": False, "deferred": 0}
RETRY_SECONDS = 0.5
DEFER_SECONDS, DEFER_LIMIT = 0.02, 100  # a signal landing inside logging waits for it (2 s at most)


def _raise(signum: int, frame: Any) -> None:
    if _state["unwinding"]:
        return  # cleanup is under way and must run to the end (SIGKILL still works)
    _state["signum"] = signum
    if _inside_logging(frame) and _state["deferred"] < DEFER_LIMIT:
        # logging takes its locks as `acquire(); try: …` : an exception raised between the two leaks the
        # lock, and the next thread that logs (sh logs every program it starts) waits for it forever. So
        # not now: delivered again in a moment, outside logging (bounded, should a write to stdout block).
        _state["deferred"] += 1
        threading.Timer(DEFER_SECONDS, _retry).start()
        return
    # Python drops an exception raised while a __del__ or similar callback runs ("Exception ignored in"):
    # until the unwinding is seen under way, the signal is delivered again.
    threading.Timer(RETRY_SECONDS, _retry).start()
    raise Interrupted(signum)


def _inside_logging(frame: Any) -> bool:
    while frame is not None:
        if frame.f_code.co_filename == logging.__file__:
            return True
        frame = frame.f_back
    return False


def _retry() -> None:
    if not _state["unwinding"] and _state["signum"] is not None:
        # a real signal to the main thread, not _thread.interrupt_main: that one only sets a flag, which a
        # main thread blocked in a system call (a sleep, a wait for a tool) would not see until it returned
        signal.pthread_kill(threading.main_thread().ident or 0, _state["signum"])


def unwinding() -> bool:
    """True once a cancellation is being unwound; called by cleanup code (runner.run, finally blocks), which
    sees the Interrupted in flight and so confirms the raise was not lost."""
    if not _state["unwinding"] and isinstance(sys.exc_info()[1], Interrupted):
        _state["unwinding"] = True
    return bool(_state["unwinding"])


def requested() -> bool:
    """A cancelling signal has arrived (its exception may not have reached this frame yet)."""
    return _state["signum"] is not None


def pending() -> Interrupted:
    """The cancellation that has been requested, as the exception to raise (requested() must be True)."""
    _state["unwinding"] = True
    return Interrupted(int(_state["signum"]))


def check_worker() -> None:
    """In a worker thread, once the run is cancelled: start nothing new (the main thread is cleaning up, and
    a container started now would outlive that clean-up)."""
    if _state["signum"] is not None and threading.current_thread() is not threading.main_thread():
        raise Interrupted(int(_state["signum"]))


def acknowledge() -> None:
    _state["unwinding"] = True


def exit_now(code: int) -> None:
    """End a cancelled run once its clean-up is done, without waiting for worker threads still finishing a
    request (their containers are gone, so they can only fail)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def install() -> None:
    _state.update(signum=None, unwinding=False, deferred=0)
    for sig in SIGNALS:
        signal.signal(sig, _raise)


class Run:
    """This run's identity, its label, its marker file and its cleanup stack."""

    def __init__(self, state_dir: Path) -> None:
        self.id = secrets.token_hex(6)
        self.dir = state_dir / "runs"
        self.marker = self.dir / f"{self.id}.json"
        self.data: dict[str, Any] = {"id": self.id, "pid": os.getpid(), "started": time.time(), "postgres": []}
        self.stack = contextlib.ExitStack()

    def record(self, key: str, value: str) -> None:
        """Note a resource in the marker (written at once: a SIGKILL may come next)."""
        self.data.setdefault(key, []).append(value)
        self._write()

    def forget(self, key: str, value: str) -> None:
        if value in self.data.get(key, []):
            self.data[key].remove(value)
            self._write()

    def _write(self) -> None:
        write_atomic(self.marker, json.dumps(self.data))  # never a half-written marker

    def callback(self, fn: Callable[[], object]) -> None:
        self.stack.callback(fn)

    def __enter__(self) -> Run:
        self._write()
        return self

    def __exit__(self, *exc: object) -> None:
        if isinstance(exc[1], Interrupted):
            acknowledge()
        try:
            self.stack.close()
        finally:
            self.marker.unlink(missing_ok=True)


_current: Run | None = None


@contextlib.contextmanager
def running(run: Run) -> Iterator[Run]:
    """Make `run` the current one (resources started anywhere in the run record themselves in it)."""
    global _current
    _current = run
    try:
        with run:
            yield run
    finally:
        _current = None


def current() -> Run | None:
    return _current


def leftovers(state_dir: Path, *, own: str) -> list[dict[str, Any]]:
    """Markers of earlier runs on this state directory. Called under its lock, so their runs are dead."""
    found = []
    for path in sorted((state_dir / "runs").glob("*.json")):
        if path.stem == own:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {"id": path.stem, "postgres": []}
        data["_marker"] = str(path)
        found.append(data)
    return found


TEMP_PREFIX = "imagepipe-"


def new_temp_dir(prefix: str) -> Path:
    """A directory of ours in the temp directory, named in the current run's marker until `drop_temp_dir`:
    a SIGKILLed run's is removed by the next run (pipeline.cleanup)."""
    path = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + prefix))
    if _current is not None:
        _current.record("temp_dirs", str(path))
    return path


def drop_temp_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if _current is not None:
        _current.forget("temp_dirs", str(path))


def remove_temp_dir(entry: str) -> bool:
    """A dead run's temp directory, removed only if it is one of ours (a marker is a file anyone could edit)."""
    path = Path(entry)
    if path.parent != Path(tempfile.gettempdir()) or not path.name.startswith(TEMP_PREFIX) or path.is_symlink():
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def kill_postgres(data_dir: Path) -> bool:
    """Stop the postmaster of a dead run's data directory and remove the directory's parent (ours)."""
    stopped = False
    pidfile = data_dir / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().splitlines()[0])
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown; the data is throw-away
        wait_until(lambda: not alive(pid), timeout=5)
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)
    if data_dir.parent.name.startswith("imagepipe-pg-"):
        shutil.rmtree(data_dir.parent, ignore_errors=True)
        stopped = True
    return stopped
