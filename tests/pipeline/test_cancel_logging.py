"""A signal that lands while the main thread is inside logging must not leak logging's locks: the cancel
is delivered a moment later, outside logging, and other threads can still log (sh logs every program it
starts, so a leaked lock deadlocked a worker starting PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

SCRIPT = textwrap.dedent("""
    import logging, signal, sys, threading, time
    sys.path.insert(0, sys.argv[1])
    from imagepipe.exec import cancel

    cancel.install()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    log = logging.getLogger("t")

    class SignalWhileWriting:
        # the signal arrives while this thread writes a record, holding the handler's lock
        fired = False
        def write(self, text):
            if not SignalWhileWriting.fired:
                SignalWhileWriting.fired = True
                cancel._raise(signal.SIGTERM, sys._getframe())
            sys.stderr.write(text)
        def flush(self):
            sys.stderr.flush()

    logging.getLogger().handlers[0].setStream(SignalWhileWriting())
    outcome = "not interrupted"
    t0 = time.monotonic()
    try:
        log.info("first record: the signal lands in here")
        print("logging call completed", flush=True)
        time.sleep(3)
    except cancel.Interrupted:
        outcome = "interrupted after the logging call"
    if time.monotonic() - t0 > 1:
        outcome = "interrupted late"
    # another thread can still take logging's locks
    worker = threading.Thread(target=lambda: logging.getLogger("worker").warning("worker logs"))
    worker.start()
    worker.join(timeout=3)
    print(outcome, "| worker alive:", worker.is_alive(), flush=True)
    cancel.exit_now(0 if not worker.is_alive() and outcome.startswith("interrupted") else 1)
""")


def test_signal_inside_logging_is_deferred_not_leaking_its_lock():
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(SRC)], capture_output=True, text=True, timeout=60)
    assert "logging call completed" in proc.stdout, proc.stdout + proc.stderr
    assert "interrupted after the logging call | worker alive: False" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0


ODD_WAIT = textwrap.dedent("""
    import signal, sys
    sys.path.insert(0, sys.argv[1])
    import sh
    from imagepipe.exec import cancel, runner

    cancel._state["signum"] = signal.SIGTERM  # a SIGTERM has arrived ...
    def odd_wait(self, *a, **kw):  # ... and sh's wait fails on the exit code it left None, as seen in CI
        return -None
    sh.RunningCommand.wait = odd_wait
    try:
        runner.run(["sleep", "30"])
    except cancel.Interrupted as e:
        print("interrupted", e.name, type(e.__cause__).__name__)
""")


def test_a_tool_failing_oddly_during_a_cancel_is_reported_as_the_cancel():
    proc = subprocess.run([sys.executable, "-c", ODD_WAIT, str(SRC)], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "interrupted SIGTERM TypeError", proc.stdout + proc.stderr


def test_a_dead_runs_temp_dir_is_removed_only_when_it_is_ours(tmp_path, monkeypatch):
    import tempfile

    from imagepipe.exec import cancel

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    ours, other, outside = temp / "imagepipe-tls-x", temp / "someone-else", tmp_path / "imagepipe-tls-y"
    for d in (ours, other, outside):
        d.mkdir()
        (d / "ca.crt").write_text("x")
    (temp / "imagepipe-link").symlink_to(other)

    assert [cancel.remove_temp_dir(str(d)) for d in (ours, other, outside, temp / "imagepipe-link")] == [
        True, False, False, False]
    assert not ours.exists() and (other / "ca.crt").exists() and (outside / "ca.crt").exists()
