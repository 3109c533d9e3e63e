"""The service's session in verify: what it needs around it (podman's bridge, the stand-ins for OpenAI and
Better Auth's JWKS, a throw-away TLS PostgreSQL starting beside it), the container itself, started hardened
as production should run it, and what is left when it dies. Everything started here is stopped on exit."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

import requests

from imagepipe.checks import prodchecks, runtimechecks
from imagepipe.checks.types import FRONTEND, ISSUER, Check, CheckRun, Services, container_host, startup_limit_s
from imagepipe.errors import PipelineError
from imagepipe.exec import cancel, cmdline, runner
from imagepipe.exec.retry import wait_until
from imagepipe.host import podman
from imagepipe.image.platforms import host
from imagepipe.services import containernet, postgres, standins, tlscerts


@contextmanager
def services(v: CheckRun) -> Iterator[Services]:
    """The throw-away database and the stand-ins around the service's run, stopped whatever happens."""
    pg = None
    database: Future[postgres.TempPostgres] | None = None
    openai = jwks = None
    tls = None
    tls_dir: Path | None = None
    try:
        gateway, subnet = containernet.bridge(v.profile, v.image, labels=v.opt.labels)
        # The stand-ins listen on the gateway: the container reaches them as host.containers.internal.
        host = container_host(v.profile)
        openai, jwks = standins.FakeOpenAI(host=gateway), standins.Jwks(host=gateway)
        jwks.add("k1")
        dsn = v.opt.database_url or ""
        if not dsn:
            # named before the certificates are made, so a cancel while they are made still removes it
            tls_dir = cancel.new_temp_dir("tls-")
            tls = tlscerts.make(tls_dir, hosts=[host, "localhost"], ips=list(dict.fromkeys(["127.0.0.1", gateway])))
            pg = postgres.for_containers(gateway, subnet, tls=tls)
            # Its address and password are known before it runs: the database starts beside the service,
            # which retries until it can connect (as it would with a slow Neon wake-up).
            database = v.pool.submit(pg.start)
            # As Neon hands it out: TLS required, SCRAM with channel binding.
            dsn = pg.dsn(host=host, sslmode="require", channel_binding="require")
        v.mark("bridge up, stand-ins and certificates ready")
        v.services = Services(openai, jwks, dsn, tls, database)
        yield v.services
    finally:
        cancel.unwinding()
        removing = None if v.opt.keep else _Removal(v)
        if database is not None:
            # a start still under way ends first (a cancel cuts it short at its next step); then stop()
            # removes whatever it got to
            with contextlib.suppress(BaseException):
                database.result(timeout=60)
        if pg is not None:
            pg.stop()
        for server in (openai, jwks):
            if server is not None:
                server.stop()
        if tls_dir is not None:
            cancel.drop_temp_dir(tls_dir)
        if removing is not None:
            removing.finish()


class _Removal:
    """The service's container removed while the database stops (each about half a second), in a thread of
    its own (the pool's workers may still be busy on a failed run). Once the run is cancelled, a thread
    may start no tool (cancel.check_worker): then the main thread removes it itself in finish()."""

    def __init__(self, v: CheckRun) -> None:
        self.argv, self.sh = cmdline.podman_rm(v.profile, v.name), v.sh
        self.done = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="verify-remove")
        self.thread.start()

    def _run(self) -> None:
        try:
            self.sh(self.argv, ok=(0, 1, 125))
            self.done = True
        except cancel.Interrupted:
            pass  # refused in a thread once cancelled: finish() does it
        except BaseException as e:  # reported by the main thread, as before
            self.error = e

    def finish(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error
        if not self.done:
            self.sh(self.argv, ok=(0, 1, 125))


def start_service(v: CheckRun) -> None:
    """The service container, hardened (read-only root, a tmpfs /tmp, no capabilities), until /health
    answers 200: the startup-time check. Then the database it was started with must be up."""
    s = v.running
    if v.profile.in_pod and (v.config.get("Healthcheck") or {}).get("Test"):
        # the containers share the pod's network: once the service listens, the idle container's check
        # would reach it, so the not-serving half of health-status is proven first (a few seconds)
        from imagepipe.checks.runtimechecks import not_serving_health

        v.idle_health = not_serving_health(v)
        v.mark("not-serving health proven before the service starts (in a pod)")
    host = container_host(v.profile)
    env = {"DATABASE_URL": s.dsn, "FRONTEND_URL": FRONTEND, **v.secrets,
           "MCP_RESOURCE_URL": f"{v.base}/mcp", "MCP_AUTHORIZATION_SERVER": ISSUER,
           "OPENAI_BASE_URL": f"http://{host}:{s.openai.port}/v1",
           "BETTER_AUTH_JWKS_URL": f"http://{host}:{s.jwks.port}/api/auth/jwks",
           "BETTER_AUTH_JWKS_COOLDOWN_SECONDS": str(prodchecks.JWKS_COOLDOWN_S)}
    t0 = time.monotonic()
    v.sh(cmdline.podman_run(v.profile, v.image, name=v.name, detach=True, env=env, labels=v.opt.labels,
                             publish=[f"127.0.0.1:{v.port}:8000"], read_only=True, tmpfs=["/tmp"],  # noqa: S108
                             cap_drop_all=True, health=runtimechecks.serving_health_flags(v.config,
                                                                                          slowdown=v.slowdown)))
    v.add(wait_for_health(v, t0))
    if s.database is not None:
        s.database.result()  # a database that could not start fails the runtime checks, saying why


def wait_for_health(v: CheckRun, t0: float) -> Check:
    """The startup-time check: seconds from `podman run` to the first 200 on /health."""
    def answered() -> float | None:
        try:
            if v.get("/health", timeout=1).status_code == 200:
                return time.monotonic() - t0
        except requests.RequestException:
            pass
        facts = podman.container(v.profile, v.name)
        state = facts.status if facts else "missing"
        if state in ("exited", "stopped", "dead", "missing"):
            raise PipelineError(f"the container exited during start-up (state {state})", stage="verify")
        return None

    limit = startup_limit_s(v.opt, v.architecture, host().arch)
    elapsed = wait_until(answered, timeout=t0 + limit - time.monotonic(), interval=0.05)
    if elapsed is None:
        raise PipelineError(f"no 200 from /health within {limit:g} s", stage="verify")
    return Check("startup-time", True, round(elapsed, 2), limit,
                 f"first 200 on /health {elapsed:.2f} s after `podman run`", round(elapsed, 2))


def death_note(v: CheckRun) -> str:
    """When the service container is gone, say so and show the tail of its log."""
    facts = podman.container(v.profile, v.name)
    if facts and facts.status == "running":
        return ""
    status = f"{facts.status} {facts.exit_code}" if facts else "missing"
    return f"; the container is not running ({status}); log tail:\n{runner.tail(v.logs(), 15)}"
