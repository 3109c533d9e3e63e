"""`hardened` proves from inside the running container what the service process has (PID 1's effective
capabilities and uid, and whether `/` takes a write), not the flags verify passed: a container given a
capability, or a writable root, fails it; the hardened one passes."""

from __future__ import annotations

import secrets

import pytest
import requests
from support import MCP_ENV

from imagepipe.checks import runtimechecks
from imagepipe.exec import cmdline, runner
from imagepipe.exec.retry import wait_until
from imagepipe.host import quirks
from imagepipe.services.postgres import free_port

pytestmark = pytest.mark.e2e
PROFILE = quirks.detect()


class Running:
    """What `hardened` asks of verify's session: the container's name, a way to run podman, the service."""

    def __init__(self, name: str, port: int) -> None:
        self.profile, self.name, self.port = PROFILE, name, port

    def sh(self, argv: list[str], ok: tuple[int, ...] = (0,), timeout: float = 120) -> runner.Result:
        return runner.run(argv, ok_codes=ok, timeout=timeout)

    def get(self, path: str, **kw: object) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)


@pytest.mark.parametrize(("flags", "passes", "says"), [
    ({"read_only": True, "tmpfs": ["/tmp"], "cap_drop_all": True}, True, "CapEff 0000000000000000"),  # noqa: S108
    ({"read_only": True, "tmpfs": ["/tmp"], "cap_drop_all": True, "cap_add": ["NET_BIND_SERVICE"]}, False,  # noqa: S108
     "CapEff 0000000000000400"),
    ({"cap_drop_all": True}, False, "fails with EACCES"),
])
def test_hardened_sees_what_the_service_really_has(pipeline, green, flags, passes, says):
    quirks.ensure_mount_namespace(PROFILE)
    name, port = f"imagepipe-hardened-{secrets.token_hex(3)}", free_port()
    env = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "BETTER_AUTH_SECRET": "s" * 40,
           "OPENAI_API_KEY": "sk-test", **MCP_ENV}
    runner.run(cmdline.podman_run(PROFILE, green[1]["image"], name=name, detach=True, env=env,
                                   publish=[f"127.0.0.1:{port}:8000"], **flags), timeout=300)
    try:
        running = Running(name, port)
        assert wait_until(lambda: _answers(running), timeout=30), "the service answers /health"
        check = runtimechecks.hardened(running)  # type: ignore[arg-type]
    finally:
        runner.run(cmdline.podman_rm(PROFILE, name), ok_codes=(0, 1, 125))
    assert check.passed is passes, check.detail
    assert says in check.detail


def _answers(running: Running) -> bool:
    try:
        return running.get("/health").status_code == 200
    except requests.RequestException:
        return False
