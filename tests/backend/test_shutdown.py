"""SIGTERM: uvicorn finishes the request in flight and exits within 10 s (as the image's CMD runs it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from support import MCP_ENV, SECRET, Api, wait_ok

from imagepipe.services.postgres import free_port

BACKEND = Path(__file__).resolve().parents[2] / "backend"


def test_sigterm_drains_in_flight_requests(postgres, fake_openai):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": postgres.dsn(), "BETTER_AUTH_SECRET": SECRET, "OPENAI_API_KEY": "sk-test",
           "OPENAI_BASE_URL": fake_openai.url, **MCP_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port),
                             "--timeout-graceful-shutdown", "8"], cwd=BACKEND, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_ok(base + "/ready"), "the service did not become ready"
        fake_openai.reset()
        fake_openai.slow(2.0)  # the model takes 2 s: the request is in flight when SIGTERM arrives
        result: dict[str, object] = {}

        def chat() -> None:
            try:
                r = requests.post(f"{base}/api/u1/chat", json={"message": "hi"}, timeout=20,
                                  headers={"Authorization": f"Bearer {Api.token('u1')}"})
                result["status"] = r.status_code
            except requests.RequestException as e:
                result["error"] = repr(e)

        worker = threading.Thread(target=chat)
        worker.start()
        time.sleep(0.7)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        exit_seconds = time.monotonic() - t0
        worker.join(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert exit_seconds < 10, f"exited {exit_seconds:.1f} s after SIGTERM"
    assert result.get("status") == 200, result  # the in-flight request completed
    assert proc.returncode in (0, -signal.SIGTERM), "uvicorn exits cleanly (re-raising SIGTERM is its convention)"
