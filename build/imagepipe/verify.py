"""Stage `verify`: pull the pushed image by digest, run it with podman and prove the contract, check by check.

Each check is a named result with its measured value and limit (see README "What each check proves").
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import requests

from imagepipe import cancel, commands, containernet, debsec, imagefs, postgres, prodchecks, runner, standins, tlscerts
from imagepipe.errors import PipelineError, ToolFailed
from imagepipe.hostenv import HostProfile
from imagepipe.postgres import free_port

log = logging.getLogger("imagepipe.verify")

CHECK_IDS = ("size", "user", "port", "health-endpoint", "health-status", "docs", "env", "database",
             "database-tls", "auth-jwks", "chat", "mcp",
             "startup-time", "health-latency", "hardened", "no-build-tools", "no-secrets", "file-ownership",
             "no-setuid", "no-junk", "vulnerabilities")
RUNTIME_CHECKS = ("startup-time", "port", "health-endpoint", "docs", "database", "env", "health-latency",
                  "hardened", "health-status", "database-tls", "auth-jwks", "chat", "mcp")
CONTAINER_HOST = "host.containers.internal"  # podman's name for the host, seen from a bridged container
FRONTEND = "http://frontend.verify.invalid"


@dataclass
class Check:
    id: str
    passed: bool
    value: Any = None
    limit: Any = None
    detail: str = ""
    seconds: float = 0.0


@dataclass
class VerifyOptions:
    max_size_mb: float = 150.0
    startup_limit_s: float = 30.0
    latency_limit_s: float = 1.0
    latency_requests: int = 500
    database_url: str | None = None  # as seen from the container; None: a throw-away PostgreSQL
    state_dir: Path = Path(".state")
    keep: bool = False  # leave containers behind for debugging
    labels: dict[str, str] = field(default_factory=dict)  # on every container verify starts (the run's)


@dataclass
class VerifyResult:
    image: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)


def mint_hs256(secret: str, sub: str, ttl: int = 600) -> str:
    """A Better-Auth-style HS256 token (the shared-secret path)."""
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + ttl}, secret, algorithm="HS256")


class Verifier:
    def __init__(self, profile: HostProfile, image: str, options: VerifyOptions) -> None:
        self.profile, self.image, self.opt = profile, image, options
        tag = secrets.token_hex(4)
        self.name = f"imagepipe-verify-{tag}"
        self.idle_name = f"imagepipe-verify-idle-{tag}"
        self.port = free_port()
        self.secrets = {
            "BETTER_AUTH_SECRET": secrets.token_urlsafe(32),
            "OPENAI_API_KEY": "sk-verify-" + secrets.token_urlsafe(24),
        }
        self.result = VerifyResult(image=image)
        self.config: dict[str, Any] = {}
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        self.dsn = ""
        self.tls: tlscerts.ServerTLS | None = None  # the throw-away database's CA and certificate
        self.openai: standins.FakeOpenAI | None = None  # served on the container gateway during the run
        self.jwks: standins.Jwks | None = None
        self.jwks_user = "usr_verify_jwks"
        self.jwks_first: tuple[int, float] = (0, 0.0)

    def token(self, user: str) -> str:
        return mint_hs256(self.secrets["BETTER_AUTH_SECRET"], user)

    def dsn_with(self, **params: str) -> str:
        """The database URL with these query parameters set (others kept)."""
        base, _, query = self.dsn.partition("?")
        pairs = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        pairs.update(params)
        return base + "?" + "&".join(f"{k}={v}" for k, v in pairs.items())

    # --- helpers -----------------------------------------------------------------------------------

    def sh(self, argv: list[str], ok: tuple[int, ...] = (0,), timeout: float = 120) -> runner.Result:
        return runner.run(argv, stage="verify", ok_codes=ok, timeout=timeout)

    def podman(self, *args: str, ok: tuple[int, ...] = (0,), timeout: float = 120) -> runner.Result:
        return self.sh(commands.podman(self.profile, *args), ok=ok, timeout=timeout)

    def add(self, check: Check) -> Check:
        self.result.checks.append(check)
        mark = "ok  " if check.passed else "FAIL"
        log.info("  %s %-16s %s", mark, check.id, check.detail)
        return check

    def guarded(self, check_id: str, fn: Callable[[], Check]) -> None:
        """A check that raises is a failed check with the reason, not a crashed stage."""
        t0 = time.monotonic()
        try:
            check = fn()
        except (PipelineError, requests.RequestException, OSError, ValueError, KeyError) as e:
            message = e.message if isinstance(e, PipelineError) else f"{type(e).__name__}: {e}"
            check = Check(check_id, False, detail=message)
        check.seconds = round(time.monotonic() - t0, 2)
        if not check.passed and check_id in RUNTIME_CHECKS:
            check.detail += self.death_note()
        self.add(check)

    def death_note(self) -> str:
        """When the service container is gone, say so and show the tail of its log."""
        state = self.podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", self.name,
                            ok=(0, 125)).stdout.split()
        if state and state[0] == "running":
            return ""
        status = " ".join(state) or "missing"
        return f"; the container is not running ({status}); log tail:\n{runner.tail(self.logs(), 15)}"

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.http.get(self.base + path, timeout=kw.pop("timeout", 5), **kw)

    def logs(self, name: str | None = None) -> str:
        out = self.podman("logs", name or self.name, ok=(0, 125))
        return out.stdout + out.stderr

    # --- the run -----------------------------------------------------------------------------------

    def run(self) -> VerifyResult:
        started = time.monotonic()
        try:
            self.podman("pull", "-q", *commands.tls_flag(self.image), self.image, timeout=600)
        except ToolFailed as e:
            raise PipelineError(f"cannot pull {self.image}: {e.message}", stage="verify", detail=e.detail) from None
        inspect = json.loads(self.podman("image", "inspect", self.image).stdout)[0]
        self.config = dict(inspect.get("Config") or {})
        # podman reports the health check next to Config, not inside it
        self.config.setdefault("Healthcheck", inspect.get("Healthcheck") or inspect.get("HealthCheck"))
        self.size = int(inspect.get("Size") or 0)

        self.guarded("size", self.check_size)
        self.guarded("user", self.check_user)
        pg = None
        try:
            gateway, subnet = containernet.bridge(self.profile, self.image, labels=self.opt.labels)
            # The stand-ins listen on the gateway: the container reaches them as host.containers.internal.
            self.openai, self.jwks = standins.FakeOpenAI(host=gateway), standins.Jwks(host=gateway)
            self.jwks.add("k1")
            if self.opt.database_url:
                self.dsn = self.opt.database_url
            else:
                self.tls = tlscerts.make(Path(tempfile.mkdtemp(prefix="imagepipe-tls-")),
                                         hosts=[CONTAINER_HOST, "localhost"], ips=["127.0.0.1", gateway])
                pg = postgres.for_containers(gateway, subnet, tls=self.tls)
                pg.start()
                # As Neon hands it out: TLS required, SCRAM with channel binding.
                self.dsn = pg.dsn(host=CONTAINER_HOST, sslmode="require", channel_binding="require")
            self.check_running_service()
        finally:
            cancel.unwinding()
            if pg is not None:
                pg.stop()
            for server in (self.openai, self.jwks):
                if server is not None:
                    server.stop()
            if self.tls is not None:
                shutil.rmtree(self.tls.ca.parent, ignore_errors=True)
        with imagefs.mounted(self.image) as root:
            self.guarded("no-build-tools", lambda: self.check_build_tools(root))
            self.guarded("no-secrets", lambda: self.check_secrets(root))
            self.guarded("file-ownership", lambda: self.check_ownership(root))
            self.guarded("no-setuid", lambda: self.check_setuid(root))
            self.guarded("no-junk", lambda: self.check_junk(root))
            self.guarded("vulnerabilities", lambda: self.check_vulnerabilities(root))
        order = {cid: i for i, cid in enumerate(CHECK_IDS)}
        self.result.checks.sort(key=lambda c: order.get(c.id, 99))
        self.result.seconds = time.monotonic() - started
        return self.result

    def check_running_service(self) -> None:
        assert self.openai is not None and self.jwks is not None
        env = {"DATABASE_URL": self.dsn, "FRONTEND_URL": FRONTEND, **self.secrets,
               "OPENAI_BASE_URL": f"http://{CONTAINER_HOST}:{self.openai.port}/v1",
               "BETTER_AUTH_JWKS_URL": f"http://{CONTAINER_HOST}:{self.jwks.port}/api/auth/jwks"}
        t0 = time.monotonic()
        try:
            # Hardened as production should run it: read-only root, a tmpfs /tmp, no capabilities.
            self.sh(commands.podman_run(self.profile, self.image, name=self.name, detach=True, env=env,
                                        labels=self.opt.labels,
                                        publish=[f"127.0.0.1:{self.port}:8000"], read_only=True,
                                        tmpfs=["/tmp"], cap_drop_all=True))  # noqa: S108 - a tmpfs in the container
            self.wait_for_health(t0)
            try:
                self.jwks_first = prodchecks.jwks_warm_up(self)
            except requests.RequestException:
                self.jwks_first = (0, time.monotonic())  # auth-jwks reports it
            self.guarded("port", self.check_port)
            self.guarded("health-endpoint", self.check_health_endpoint)
            self.guarded("docs", self.check_docs)
            self.guarded("database", self.check_database)
            self.guarded("env", self.check_env)
            self.guarded("health-latency", self.check_latency)
            self.guarded("hardened", self.check_hardened)
            self.guarded("health-status", self.check_health_status)
            self.guarded("database-tls", lambda: prodchecks.check_database_tls(self))
            self.guarded("auth-jwks", lambda: prodchecks.check_auth_jwks(self))
            self.guarded("chat", lambda: prodchecks.check_chat(self))
            self.guarded("mcp", lambda: prodchecks.check_mcp(self))
        except PipelineError as e:
            note = self.death_note() or f"; log tail:\n{runner.tail(self.logs(), 15)}"
            for cid in RUNTIME_CHECKS:
                if not any(c.id == cid for c in self.result.checks):
                    self.add(Check(cid, False, detail=f"{e.message}{note}"))
        finally:
            if not self.opt.keep:
                self.podman("rm", "-f", "-t", "2", self.name, ok=(0, 1, 125))
                self.podman("rm", "-f", "-t", "0", self.idle_name, ok=(0, 1, 125))

    def wait_for_health(self, t0: float) -> float:
        deadline = t0 + self.opt.startup_limit_s
        while time.monotonic() < deadline:
            try:
                if self.get("/health", timeout=1).status_code == 200:
                    elapsed = time.monotonic() - t0
                    self.add(Check("startup-time", True, round(elapsed, 2), self.opt.startup_limit_s,
                                   f"first 200 on /health {elapsed:.2f} s after `podman run`"))
                    return elapsed
            except requests.RequestException:
                pass
            state = self.podman("inspect", "--format", "{{.State.Status}}", self.name, ok=(0, 125)).stdout.strip()
            if state in ("exited", "stopped", "dead"):
                raise PipelineError(f"the container exited during start-up (state {state})", stage="verify")
            time.sleep(0.05)
        raise PipelineError(f"no 200 from /health within {self.opt.startup_limit_s:g} s", stage="verify")

    # --- checks ------------------------------------------------------------------------------------

    def check_size(self) -> Check:
        mb = self.size / 1e6
        return Check("size", mb < self.opt.max_size_mb, round(mb, 1), self.opt.max_size_mb,
                     f"{mb:.1f} MB uncompressed (limit {self.opt.max_size_mb:g} MB)")

    def check_user(self) -> Check:
        out = self.sh(commands.podman_run(self.profile, self.image, remove=True, labels=self.opt.labels,
                                          command=["sh", "-c", "whoami; id -u"])).stdout.split()
        configured = self.config.get("User", "")
        ok = out[:2] == ["appuser", "1001"] and configured not in ("", "root", "0")
        return Check("user", ok, " ".join(out[:2]), "appuser 1001",
                     f"whoami/id -u in the container: {' '.join(out[:2]) or '?'}; image USER {configured or '(unset)'}")

    def check_port(self) -> Check:
        exposed = sorted((self.config.get("ExposedPorts") or {}).keys())
        answered = self.get("/health").status_code == 200
        ok = "8000/tcp" in exposed and answered
        return Check("port", ok, exposed, "8000/tcp",
                     f"EXPOSE {', '.join(exposed) or 'nothing'}; published as 127.0.0.1:{self.port} -> 8000, "
                     f"{'answers' if answered else 'does not answer'}")

    def check_health_endpoint(self) -> Check:
        response = self.get("/health")
        body = response.text
        ok = response.status_code == 200 and response.json() == {"status": "healthy"}
        return Check("health-endpoint", ok, f"{response.status_code} {body}", '200 {"status":"healthy"}',
                     f"GET /health -> {response.status_code} {body[:80]}")

    def check_docs(self) -> Check:
        docs, spec = self.get("/docs"), self.get("/openapi.json")
        ok = docs.status_code == 200 and spec.status_code == 200 and "paths" in spec.json()
        return Check("docs", ok, [docs.status_code, spec.status_code], [200, 200],
                     f"GET /docs -> {docs.status_code}, GET /openapi.json -> {spec.status_code}")

    def check_database(self) -> Check:
        deadline = time.monotonic() + 30
        logs = ""
        while time.monotonic() < deadline:
            logs = self.logs()
            if "database connection OK" in logs:
                break
            time.sleep(0.2)
        connected = "database connection OK" in logs
        ready = self.get("/ready")
        psql = self.podman("exec", self.name, "psql", self.dsn, "-tAc", "SELECT 1", ok=(0, 1, 2))
        psql_ok = psql.code == 0 and psql.stdout.strip() == "1"
        # One write and read through the API proves the pool, the schema and the auth path together.
        token = self.token("usr_verify")
        headers = {"Authorization": f"Bearer {token}"}
        created = self.http.post(f"{self.base}/api/usr_verify/tasks", json={"title": "verify"}, headers=headers,
                                 timeout=5)
        listed = self.get("/api/usr_verify/tasks", headers=headers)
        api_ok = created.status_code == 201 and listed.status_code == 200 and len(listed.json()) >= 1
        ok = connected and ready.status_code == 200 and psql_ok and api_ok
        detail = (f"log 'database connection OK': {'yes' if connected else 'no'}; /ready {ready.status_code}; "
                  f"psql in image: {'ok' if psql_ok else (psql.stderr or psql.stdout).strip()[:120]}; "
                  f"API write/read: {created.status_code}/{listed.status_code}")
        return Check("database", ok, {"ready": ready.status_code, "psql": psql_ok, "api": api_ok}, "all ok", detail)

    def check_env(self) -> Check:
        logs = self.logs()
        line = next((ln for ln in logs.splitlines() if "settings loaded:" in ln), "")
        expected = ["DATABASE_URL=<set>", "BETTER_AUTH_SECRET=<set>", "OPENAI_API_KEY=<set>",
                    "AGENT_MODEL=gpt-4o", f"FRONTEND_URL={FRONTEND}"]
        missing = [e for e in expected if e not in line]
        leaked = [k for k, v in self.secrets.items() if v in logs]
        preflight = self.http.options(f"{self.base}/api/usr_verify/tasks", timeout=5, headers={
            "Origin": FRONTEND, "Access-Control-Request-Method": "GET"})
        cors_ok = preflight.headers.get("access-control-allow-origin") == FRONTEND
        ok = not missing and not leaked and cors_ok
        detail = ("settings as passed, AGENT_MODEL default applied, CORS allows FRONTEND_URL, no secret in logs"
                  if ok else f"missing in settings log: {missing}; secrets in logs: {leaked}; CORS ok: {cors_ok}")
        return Check("env", ok, {"missing": missing, "leaked": leaked, "cors": cors_ok}, "none missing/leaked", detail)

    def check_latency(self) -> Check:
        samples = []
        for _ in range(self.opt.latency_requests):
            t = time.perf_counter()
            r = self.get("/health", timeout=self.opt.latency_limit_s * 5)
            samples.append(time.perf_counter() - t)
            if r.status_code != 200:
                return Check("health-latency", False, None, self.opt.latency_limit_s, f"/health answered {r.status_code}")
        p99 = statistics.quantiles(samples, n=100)[98]
        p50 = statistics.median(samples)
        return Check("health-latency", p99 < self.opt.latency_limit_s, round(p99 * 1000, 2),
                     self.opt.latency_limit_s * 1000,
                     f"p99 {p99 * 1000:.1f} ms, p50 {p50 * 1000:.1f} ms over {len(samples)} requests (limit "
                     f"{self.opt.latency_limit_s * 1000:g} ms)")

    def check_health_status(self) -> Check:
        hc = self.config.get("Healthcheck") or {}
        test = hc.get("Test") or []
        if not test or test[0] == "NONE":
            return Check("health-status", False, None, "healthy", "the image has no HEALTHCHECK")
        retries = int(hc.get("Retries") or 3)
        start_period = (hc.get("StartPeriod") or 0) / 1e9
        # podman schedules checks with systemd timers; without systemd we drive them: one run on the
        # serving container must give healthy ...
        run = self.podman("healthcheck", "run", self.name, ok=(0, 1))
        status = self.podman("inspect", "--format", "{{.State.Health.Status}}", self.name).stdout.strip()
        healthy = run.code == 0 and status == "healthy"
        # ... and on a container where nothing listens, `retries` failures after the start period must
        # give unhealthy (runs back to back: the interval only spaces real-life checks).
        self.sh(commands.podman_run(self.profile, self.image, name=self.idle_name, detach=True, labels=self.opt.labels,
                                    command=["python", "-c", "import time; time.sleep(600)"]))
        time.sleep(start_period + 0.5)
        for _ in range(retries):
            self.podman("healthcheck", "run", self.idle_name, ok=(0, 1))
        idle_status = self.podman("inspect", "--format", "{{.State.Health.Status}}", self.idle_name).stdout.strip()
        ok = healthy and idle_status == "unhealthy"
        return Check("health-status", ok, {"serving": status, "not-serving": idle_status},
                     {"serving": "healthy", "not-serving": "unhealthy"},
                     f"serving container: {status}; nothing listening after {retries} runs: {idle_status} "
                     f"(start period {start_period:g} s, retries {retries})")

    def check_hardened(self) -> Check:
        out = self.podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}|{{json .EffectiveCaps}}",
                          self.name).stdout.strip()
        read_only, _, caps = out.partition("|")
        caps_list = json.loads(caps or "null") or []
        serving = self.get("/health").status_code == 200
        ok = read_only == "true" and not caps_list and serving
        return Check("hardened", ok, {"read_only": read_only == "true", "caps": caps_list}, "read-only, no caps",
                     f"served with a read-only root (tmpfs /tmp) and no capabilities: "
                     f"{'yes' if ok else f'read-only {read_only}, caps {caps_list}, serving {serving}'}")

    def check_setuid(self, root: Path) -> Check:
        found = imagefs.setuid_files(root)
        return Check("no-setuid", not found, found[:10], [],
                     "no setuid/setgid files (the runtime root drops them all)" if not found
                     else f"setuid/setgid: {', '.join(found[:5])}")

    def check_junk(self, root: Path) -> Check:
        found = imagefs.context_junk(root)
        return Check("no-junk", not found, found[:10], [],
                     "no .git, tests, caches or .env under /app; no build-time mount point" if not found else f"found: {', '.join(found[:5])}")

    def check_build_tools(self, root: Path) -> Check:
        found = imagefs.find_build_tools(root)
        return Check("no-build-tools", not found, found, [], "no compiler, linker or make in the image" if not found
                     else f"found: {', '.join(found)}")

    def check_secrets(self, root: Path) -> Check:
        values = list(self.secrets.values())
        hits = imagefs.scan_secrets(root, values)
        history = self.podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", self.image).stdout
        meta = json.dumps(self.config) + history
        meta_hits = [k for k, v in self.secrets.items() if v in meta]
        meta_hits += [label for label, pat in imagefs.SECRET_PATTERNS.items() if pat.search(meta.encode())]
        for key in ("BETTER_AUTH_SECRET", "OPENAI_API_KEY", "DATABASE_URL"):
            if any(e.startswith(f"{key}=") for e in self.config.get("Env") or []):
                meta_hits.append(f"ENV {key} baked into the image")
        problems = hits + [f"config/history: {h}" for h in meta_hits]
        return Check("no-secrets", not problems, problems[:10], [],
                     "run-time secrets and key patterns absent from layers, config and history; no .env files"
                     if not problems else "; ".join(problems[:5]))

    def check_ownership(self, root: Path) -> Check:
        not_owned, writable = imagefs.ownership_problems(root)
        ok = not not_owned and not writable
        return Check("file-ownership", ok, {"not-owned": not_owned[:10], "world-writable": writable[:10]}, "none",
                     "/app owned by appuser (1001); nothing world-writable" if ok else
                     f"not owned by 1001: {not_owned[:5]}; world-writable: {writable[:5]}")

    def check_vulnerabilities(self, root: Path) -> Check:
        installed = imagefs.dpkg_packages(root)
        index = debsec.security_index(self.opt.state_dir / "cache")
        pending = debsec.pending_fixes(installed, index)
        extra = ""
        scanner = shutil.which("trivy") or shutil.which("grype")
        if scanner:
            argv = ([scanner, "image", "--severity", "CRITICAL", "--exit-code", "1", "--quiet", self.image]
                    if scanner.endswith("trivy") else [scanner, self.image, "--fail-on", "critical", "-q"])
            scan = runner.run(argv, ok_codes=(0, 1), stage="verify", timeout=600)
            if scan.code:
                pending.append(f"{Path(scanner).name}: critical findings")
            extra = f"; {Path(scanner).name}: {'critical findings' if scan.code else 'no critical findings'}"
        else:
            extra = "; no trivy/grype installed (Debian security index only)"
        return Check("vulnerabilities", not pending, pending[:20], [],
                     f"{len(installed)} Debian packages, {len(pending)} with a pending bookworm-security fix{extra}")
