"""The contract's own Validation section, run as written: the image started with exactly the three variables
its commands set (their example values, nothing else), then what they expect: the health status `healthy`,
`{"status":"healthy"}` from /health, the OpenAPI docs at /docs, and `whoami` -> appuser. verify's service
runs with settings of its own (stand-ins, MCP OAuth, CORS), so only this check sees an image that needs a
variable the contract does not set."""

from __future__ import annotations

import secrets
import time

import requests

from imagepipe.checks import runtimechecks
from imagepipe.checks.types import Check, CheckRun, ImageCheck, startup_limit_s
from imagepipe.exec import cmdline, runner
from imagepipe.exec.retry import wait_until
from imagepipe.host import podman
from imagepipe.image.platforms import host
from imagepipe.services.postgres import free_port

# The Validation section's `docker run -e …` lines, value for value.
CONTRACT_ENV = {"DATABASE_URL": "postgresql://user:pass@host/db", "BETTER_AUTH_SECRET": "test-secret",
                "OPENAI_API_KEY": "sk-test"}
EXPECTED = {"health-status": "healthy", "/health": '{"status":"healthy"}', "/docs": 200, "whoami": "appuser"}


def contract_validation(v: CheckRun) -> Check:
    """Inside a pod the container takes the pod's port 8000, so verify runs this before its service starts
    (catalog: own_port); elsewhere it is published on a loopback port of its own (the contract's
    `-p 8000:8000`, moved so it cannot meet the service's), beside the service."""
    name = f"imagepipe-verify-contract-{secrets.token_hex(4)}"
    port = 8000 if v.profile.in_pod else next(p for p in iter(free_port, None) if p != v.port)
    base = f"http://127.0.0.1:{port}"
    who = _whoami(v)
    seen: dict[str, object] = {"whoami": who}
    t0 = time.monotonic()
    v.sh(cmdline.podman_run(v.profile, v.image, name=name, detach=True, env=CONTRACT_ENV, labels=v.opt.labels,
                            publish=[f"127.0.0.1:{port}:8000"], host_proxy=False,
                            health=runtimechecks.serving_health_flags(v.config, slowdown=v.slowdown)))
    try:
        limit = startup_limit_s(v.opt, v.architecture, host().arch)
        exited = _wait_for_health(v, name, base, deadline=t0 + limit, limit=limit)
        if exited is not None:
            seen.update({"health-status": "exited", "/health": None, "/docs": None})
            return Check("contract-validation", False, seen, EXPECTED, exited)
        # the image's own HEALTHCHECK, run once the service answers (health-status's speed-up of the
        # contract's `sleep 40`): a passing run during the start period makes the container healthy
        v.sh(cmdline.podman_healthcheck_run(v.profile, name), ok=(0, 1, 125))
        facts = podman.container(v.profile, name, stage="verify")
        health = requests.get(base + "/health", timeout=5 * v.slowdown)
        docs = requests.get(base + "/docs", timeout=5 * v.slowdown)
        seen.update({"health-status": facts.health if facts else "missing", "/health": health.text.strip(),
                     "/docs": docs.status_code})
    except requests.RequestException as e:
        return Check("contract-validation", False, seen, EXPECTED, f"the service stopped answering: {e}")
    finally:
        v.sh(cmdline.podman_rm(v.profile, name), ok=(0, 1, 125))
    failed = [f"{k}: {seen[k]!r} (expected {want!r})" for k, want in EXPECTED.items() if seen[k] != want]
    return Check("contract-validation", not failed, seen, EXPECTED,
                 "; ".join(failed) if failed else
                 "with only DATABASE_URL, BETTER_AUTH_SECRET and OPENAI_API_KEY (the contract's example values): "
                 "healthy, /health and /docs answer, whoami appuser")


def _whoami(v: ImageCheck) -> str:
    """`docker run --rm IMAGE whoami`, nothing set; what went wrong where it printed no name."""
    ran = v.sh(cmdline.podman_run(v.profile, v.image, remove=True, labels=v.opt.labels, command=["whoami"],
                                  host_proxy=False), ok=(0, 1, 125, 126, 127))
    if ran.code == 0 and ran.stdout.strip():
        return ran.stdout.strip()
    return f"exit {ran.code}: {runner.first_error_line(ran.stderr) or ran.stdout.strip()}"


def _wait_for_health(v: ImageCheck, name: str, base: str, *, deadline: float,
                     limit: float) -> str | None:
    """None once /health answers 200; else why not: the container's exit and its last log line, or the
    contract's 30 seconds run out."""
    def answered() -> bool | str:
        try:
            if requests.get(base + "/health", timeout=1).status_code == 200:
                return True
        except requests.RequestException:
            pass
        facts = podman.container(v.profile, name)
        if facts is None or facts.status in ("exited", "stopped", "dead"):
            logs = v.sh(cmdline.podman_logs(v.profile, name), ok=(0, 125))
            # the service says why it stopped on stderr (a configuration error is one line there)
            last = runner.tail(logs.stderr.strip() or logs.stdout, 1).strip()
            how = f"exited {facts.exit_code}" if facts else "is gone"
            return f"with only the contract's three variables the container {how} before /health answered: {last}"
        return False

    found = wait_until(answered, timeout=deadline - time.monotonic(), interval=0.1)
    if found is True:
        return None
    if isinstance(found, str):
        return found
    return f"no 200 from /health within {limit:g} s of `podman run`"
