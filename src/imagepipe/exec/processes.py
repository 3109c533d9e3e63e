"""Stopping a tool and everything it started: TERM to its process group and every descendant, a grace
period, then KILL to the whole group (a child that started while TERM was being delivered never saw it).
Used by the runner on cancel and timeouts."""

from __future__ import annotations

import contextlib
import os
import signal

import psutil
import sh

from imagepipe.exec.retry import wait_until


def stop(cmd: sh.RunningCommand, grace: float = 5.0) -> None:
    """Stop the tool and every process it started: SIGTERM to its process group and to each descendant
    (whatever session or group it moved to), SIGKILL to what is left after `grace` seconds. The group is
    killed even when the tool itself exited in time: a child started while TERM was being delivered (a
    buildah RUN step that was just starting) never saw it and would outlive the run."""
    tree = _tree(cmd.pid)
    with contextlib.suppress(OSError, sh.SignalException, sh.ErrorReturnCode):
        cmd.process.signal_group(signal.SIGTERM)
    _signal_all(tree, signal.SIGTERM)
    try:
        cmd.wait(timeout=grace)
    except (sh.TimeoutException, sh.ErrorReturnCode, sh.SignalException, TypeError):
        pass  # TypeError: sh's wait after a signal landed inside it (exit code None); the KILL below still runs
    left = [p for p in tree if p.is_running()]
    for proc in list(left):
        with contextlib.suppress(psutil.Error):
            left += proc.children(recursive=True)
    with contextlib.suppress(OSError):
        os.killpg(cmd.pid, signal.SIGKILL)  # the tool's own session: its group id is its pid
    _signal_all(left, signal.SIGKILL)
    psutil.wait_procs(left, timeout=2)
    wait_until(lambda: not _group_alive(cmd.pid), timeout=2, interval=0.05)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        leader = psutil.Process(pid)
        return [leader, *leader.children(recursive=True)]
    except psutil.Error:
        return []


def _signal_all(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except OSError:
        return False
