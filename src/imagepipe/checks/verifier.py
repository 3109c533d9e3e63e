"""Stage `verify`: pull the pushed image by digest, run it with podman and prove the contract, check by check.

The checks live by family: staticchecks.py (the image's tree, config and history), runtimechecks.py (the
running container), prodchecks.py (the production paths: TLS database, JWKS, chat, MCP). This module runs
them: independent work goes to worker threads (the tree pass, the not-serving container, the user check,
the TLS and MCP probes) while the service starts and answers in the main thread. See README "What each
check proves".
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import requests

from imagepipe.checks import prodchecks, runtimechecks, session, staticchecks
from imagepipe.checks.catalog import CHECK_IDS, SERVICE_CHECKS, TREE_CHECKS, Spec, select
from imagepipe.checks.tokens import mint_hs256
from imagepipe.checks.types import Check, Services, VerifyOptions, VerifyResult, slowdown
from imagepipe.exec import cancel, cmdline, runner
from imagepipe.host import podman
from imagepipe.supplychain.inventory import Inventory

__all__ = ["CHECK_IDS", "Verifier"]  # CHECK_IDS: the tests read the report order here
from imagepipe.errors import PipelineError, ToolFailed
from imagepipe.host.profile import HostProfile
from imagepipe.image.platforms import host
from imagepipe.services.postgres import free_port

log = logging.getLogger("imagepipe.checks.verifier")
CheckFn = Callable[[], Check]


class Verifier:
    def __init__(self, profile: HostProfile, image: str, options: VerifyOptions) -> None:
        self.profile, self.image, self.opt = profile, image, options
        tag = secrets.token_hex(4)
        self.name = f"imagepipe-verify-{tag}"
        self.idle_name = f"imagepipe-verify-idle-{tag}"
        # inside a pod the service's own port is the pod's (see HostProfile.in_pod)
        self.port = 8000 if profile.in_pod else free_port()
        self.secrets = {
            "BETTER_AUTH_SECRET": secrets.token_urlsafe(32),
            "OPENAI_API_KEY": "sk-verify-" + secrets.token_urlsafe(24),
        }
        self.result = VerifyResult(image=image)
        self.config: dict[str, Any] = {}
        self.size = 0
        self.architecture = ""
        self.slowdown = 1  # set with the architecture, once the image is inspected
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        self.services: Services | None = None  # while the service runs (session.services)
        self.jwks_user = "usr_verify_jwks"
        self.jwks_first: tuple[int, float] = (0, 0.0)
        self.idle_started: Future[float] = Future()
        self.idle_health: str | None = None
        self.idle_proof: Future[str] | None = None
        self.pool = ThreadPoolExecutor(max_workers=7, thread_name_prefix="verify")
        self.t0 = time.monotonic()

    # --- helpers -----------------------------------------------------------------------------------

    def token(self, user: str, **claims: Any) -> str:
        return mint_hs256(self.secrets["BETTER_AUTH_SECRET"], user, **claims)

    @property
    def running(self) -> Services:
        """The stand-ins and the database the service runs against; the service checks run inside
        session.services(), which sets them."""
        if self.services is None:
            raise RuntimeError("a service check ran outside session.services()")
        return self.services

    def sh(self, argv: list[str], ok: tuple[int, ...] = (0,), timeout: float = 120) -> runner.Result:
        return runner.run(argv, stage="verify", ok_codes=ok, timeout=timeout)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.http.get(self.base + path, timeout=kw.pop("timeout", 5 * self.slowdown), **kw)

    def logs(self, name: str | None = None) -> str:
        out = self.sh(cmdline.podman_logs(self.profile, name or self.name), ok=(0, 125))
        return out.stdout + out.stderr

    def mark(self, what: str) -> None:
        """Where the time goes: the run's phases with their offsets (the report's verify_phases; --verbose)."""
        offset = time.monotonic() - self.t0
        self.result.phases.append((what, round(offset, 2)))
        log.debug("verify at +%.2f s: %s", offset, what)

    def add(self, check: Check) -> Check:
        self.result.checks.append(check)
        mark = "ok  " if check.passed else "FAIL"
        log.info("  %s %-16s %s (%.1f s)", mark, check.id, check.detail, check.seconds)
        return check

    def guard(self, check_id: str, fn: CheckFn) -> Check:
        """A check that raises is a failed check with the reason, not a crashed stage; timed."""
        t0 = time.monotonic()
        try:
            check = fn()
        except (PipelineError, requests.RequestException, OSError, ValueError, KeyError) as e:
            message = e.message if isinstance(e, PipelineError) else f"{type(e).__name__}: {e}"
            check = Check(check_id, False, detail=message)
        check.seconds = check.seconds or round(time.monotonic() - t0, 2)
        if not check.passed and check_id in SERVICE_CHECKS:
            check.detail += session.death_note(self)
        return check

    def bind(self, spec: Spec) -> CheckFn:
        assert spec.fn is not None
        return functools.partial(spec.fn, self)

    def guarded(self, check_id: str, fn: CheckFn) -> None:
        self.add(self.guard(check_id, fn))

    def background(self, check_id: str, fn: CheckFn) -> Future[Check]:
        return self.pool.submit(self.guard, check_id, fn)

    # --- the run -----------------------------------------------------------------------------------

    def run(self) -> VerifyResult:
        started = self.t0 = time.monotonic()
        try:
            self.sh(cmdline.podman_pull(self.profile, self.image, auth=self.opt.pull_auth), timeout=600)
        except ToolFailed as e:
            raise PipelineError(f"cannot pull {self.image}: {e.message}", stage="verify", detail=e.detail) from None
        facts = podman.image(self.profile, self.image, stage="verify")
        if facts is None:
            raise PipelineError(f"{self.image} is not in local storage after the pull", stage="verify")
        self.config, self.size = facts.config, facts.size
        self.result.architecture = self.architecture = facts.architecture
        self.slowdown = slowdown(facts.architecture, host().arch)
        self.result.emulated = self.slowdown > 1
        interrupted = False
        self.mark("pulled and inspected")
        try:
            static = self.pool.submit(staticchecks.run, self.profile, self.image, config=self.config,
                                      secrets=self.secrets, opt=self.opt,
                                      arch=facts.architecture or "amd64")
            self.idle_started = self.pool.submit(runtimechecks.start_idle, self)
            if not self.profile.in_pod and runtimechecks.idle_health_flags(self.config) is not None:
                self.idle_proof = self.pool.submit(runtimechecks.not_serving_health, self)
            in_pod = self.profile.in_pod
            before = [self.background(s.id, self.bind(s)) for s in select("before", worker=True, in_pod=in_pod)]
            for spec in select("before", worker=False, in_pod=in_pod):
                self.guarded(spec.id, self.bind(spec))
            with session.services(self):
                self.serve_and_check()
            self.mark("service checks done, its container and database removed")
            for future in before:
                self.add(future.result())
            checks, self.result.inventory = self.static_results(static)
            for check in checks:
                self.add(check)
            self.mark("static checks collected")
        except cancel.Interrupted:
            interrupted = True
            raise
        finally:
            # On a cancel, the workers are not waited for (the run's cleanup removes their containers).
            self.pool.shutdown(wait=not (interrupted or cancel.requested()), cancel_futures=True)
            if not self.opt.keep:
                self.sh(cmdline.podman_rm(self.profile, self.idle_name), ok=(0, 1, 125))
        order = {cid: i for i, cid in enumerate(CHECK_IDS)}
        self.result.checks.sort(key=lambda c: order.get(c.id, 99))
        self.result.seconds = time.monotonic() - started
        return self.result

    def static_results(self, static: Future[tuple[list[Check], Inventory]]
                       ) -> tuple[list[Check], Inventory | None]:
        try:
            return static.result()
        except (PipelineError, OSError, ValueError) as e:
            message = e.message if isinstance(e, PipelineError) else f"{type(e).__name__}: {e}"
            failed = [Check(cid, False, detail=f"reading the image failed: {message}") for cid in TREE_CHECKS]
            return failed, None

    def serve_and_check(self) -> None:
        side: list[Future[Check]] = []
        try:
            session.start_service(self)
            self.mark("service answers /health")
            try:
                self.jwks_first = prodchecks.jwks_warm_up(self)
            except requests.RequestException:
                self.jwks_first = (0, time.monotonic())  # auth-jwks reports it
            # Independent of the HTTP checks below: their own containers or connections.
            side += [self.background(s.id, self.bind(s)) for s in select("serving", worker=True)]
            for spec in select("serving", worker=False):  # the catalog's order, the waiting ones last
                self.guarded(spec.id, self.bind(spec))
                self.mark(f"{spec.id} done")
            self.mark("main-thread checks done")
            for future in side:
                self.add(future.result())
            self.mark("side checks done")
        except PipelineError as e:
            for future in side:  # what the workers found stands
                self.add(future.result())
            note = session.death_note(self) or f"; log tail:\n{runner.tail(self.logs(), 15)}"
            if not any(c.id == "database-tls" for c in self.result.checks):
                # runs in fresh containers: names a broken TLS stack even when the service never came up
                self.guarded("database-tls", lambda: prodchecks.check_database_tls(self))
            for cid in SERVICE_CHECKS:
                if not any(c.id == cid for c in self.result.checks):
                    self.add(Check(cid, False, detail=f"{e.message}{note}"))
