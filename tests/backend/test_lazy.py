"""The OpenAI SDK and the MCP server load on first use (app.core.lazy): a process serving the tasks API has
imported neither; the first chat turn and the first /mcp/ request load them, and both work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests
from support import MCP_ENV, SECRET, Api, wait_ok

from imagepipe.services.postgres import free_port

BACKEND = Path(__file__).resolve().parents[2] / "backend"


def imported(log: Path) -> set[str]:
    """Top-level modules named in `python -X importtime`'s log so far."""
    names = set()
    for line in log.read_text().splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_chat_and_mcp_load_on_first_use(postgres, fake_openai, tmp_path):
    port, log = free_port(), tmp_path / "importtime.log"
    env = {**os.environ, "DATABASE_URL": postgres.dsn(), "BETTER_AUTH_SECRET": SECRET, "OPENAI_API_KEY": "sk-test",
           "OPENAI_BASE_URL": fake_openai.url, **MCP_ENV}
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "uvicorn", "app.main:app", "--port",
                                 str(port)], cwd=BACKEND, env=env, stdout=subprocess.DEVNULL, stderr=err)
    base, user = f"http://127.0.0.1:{port}", "usr_lazy"
    # one token for both: the API checks no audience, the MCP server wants its own resource in aud
    headers = {"Authorization": f"Bearer {Api.token(user, aud=MCP_ENV['MCP_RESOURCE_URL'])}"}
    try:
        assert wait_ok(base + "/ready"), log.read_text()[-2000:]
        assert requests.get(f"{base}/api/{user}/tasks", headers=headers, timeout=10).status_code == 200
        served = imported(log)
        assert "openai" not in served and "mcp.server" not in served, "loaded before anyone chatted"
        fake_openai.reply("Nothing to do.")
        chat = requests.post(f"{base}/api/{user}/chat", headers=headers, json={"message": "hi"}, timeout=30)
        assert chat.status_code == 200 and chat.json()["response"] == "Nothing to do.", chat.text
        assert "openai" in imported(log) and "mcp.server" not in imported(log)
        assert requests.post(f"{base}/mcp/", json={}, timeout=10).status_code == 401  # built, then guarded
        listed = requests.post(f"{base}/mcp/", headers={**headers, "Accept": "application/json, text/event-stream"},
                               json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30)
        assert listed.status_code == 200, listed.text
        assert {t["name"] for t in listed.json()["result"]["tools"]} >= {"add_task", "list_tasks"}
        assert "mcp.server" in imported(log)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_first_request_loads_off_the_event_loop():
    """While the MCP server's modules load (held here until released), the event loop keeps serving: another
    task runs to completion; then the first request is answered by the app the mount built."""
    import threading
    from contextlib import asynccontextmanager

    import anyio

    from app.core.lazy import LazyMount

    loading, release, served = threading.Event(), threading.Event(), []

    def preload() -> None:  # stands for the imports: blocks its worker thread until released
        loading.set()
        release.wait(10)

    async def app(scope, receive, send) -> None:  # noqa: ANN001 - ASGI
        served.append(scope["path"])

    @asynccontextmanager
    async def running():  # noqa: ANN202 - the session manager's run()
        yield

    async def main() -> list[str]:
        mount = LazyMount(lambda: (app, running), preload=preload)
        others = []
        async with anyio.create_task_group() as group:
            mount.attach(group)
            group.start_soon(mount, {"type": "http", "path": "/mcp/"}, None, None)
            await anyio.to_thread.run_sync(loading.wait)
            for i in range(3):  # the loop is free while the modules load
                await anyio.sleep(0)
                others.append(i)
            assert mount.app is None and served == [], "still loading"
            release.set()
            with anyio.fail_after(10):
                while not served:
                    await anyio.sleep(0.01)
            mount.stop.set()
        return others

    assert anyio.run(main) == [0, 1, 2]
    assert served == ["/mcp/"]
