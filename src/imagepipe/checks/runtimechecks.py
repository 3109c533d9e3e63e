"""verify's runtime checks: the image run as a container, the service asked over HTTP, podman asked about
the container. Each takes the running CheckRun (`v`)."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import requests

from imagepipe.checks.types import (
    FRONTEND,
    ISSUER,
    Check,
    CheckRun,
    ImageCheck,
    RunTools,
    ServiceCheck,
    ServiceView,
)
from imagepipe.errors import UsageError
from imagepipe.exec import cmdline
from imagepipe.exec.retry import wait_until
from imagepipe.host import podman
from imagepipe.image.platforms import MACHINES, host
from imagepipe.pipeline import deployment


def size(v: ImageCheck) -> Check:
    mb = v.size / 1e6
    return Check("size", mb < v.opt.max_size_mb, round(mb, 1), v.opt.max_size_mb,
                 f"{mb:.1f} MB uncompressed (limit {v.opt.max_size_mb:g} MB)")

def printed(v: ImageCheck, *argv: str) -> str:
    """What a short-lived container of the image prints. Seen once, with two checkouts verifying at once on a
    loaded machine: exit 0 and nothing captured (not reproduced in 30 concurrent runs since; podman's attach
    or our capture of a process that exits at once). A command that always prints is asked again, twice at
    most, when its answer is empty; a failing command still fails the check."""
    out = ""
    for _ in range(3):
        out = v.sh(cmdline.podman_run(v.profile, v.image, remove=True, labels=v.opt.labels,
                                       command=list(argv))).stdout
        if out.strip():
            break
    return out


def user(v: ImageCheck) -> Check:
    out = printed(v, "sh", "-c", "whoami; id -u").split()
    configured = v.config.get("User", "")
    ok = out[:2] == ["appuser", "1001"] and configured not in ("", "root", "0")
    return Check("user", ok, " ".join(out[:2]), "appuser 1001",
                 f"whoami/id -u in the container: {' '.join(out[:2]) or '?'}; image USER {configured or '(unset)'}")

def architecture(v: ImageCheck) -> Check:
    """The image is the platform it claims (and the run asked for), and its programs run as that machine:
    `uname -m` inside it (under qemu user emulation for another architecture)."""
    machine = printed(v, "uname", "-m").strip()
    expected = v.opt.platform.split("/")[1] if v.opt.platform else v.architecture
    want = MACHINES.get(expected, "?")
    ok = v.architecture == expected and machine == want
    how = "under qemu user emulation" if v.architecture != host().arch else "natively"
    return Check("architecture", ok, machine, want,
                 f"image config linux/{v.architecture or '?'}, `uname -m` in the container: {machine or '?'} ({how})")


def port(v: CheckRun) -> Check:
    exposed = sorted((v.config.get("ExposedPorts") or {}).keys())
    answered = v.get("/health").status_code == 200
    ok = "8000/tcp" in exposed and answered
    return Check("port", ok, exposed, "8000/tcp",
                 f"EXPOSE {', '.join(exposed) or 'nothing'}; published as 127.0.0.1:{v.port} -> 8000, "
                 f"{'answers' if answered else 'does not answer'}")

def health_endpoint(v: ServiceView) -> Check:
    response = v.get("/health")
    body = response.text
    ok = response.status_code == 200 and response.json() == {"status": "healthy"}
    return Check("health-endpoint", ok, f"{response.status_code} {body}", '200 {"status":"healthy"}',
                 f"GET /health -> {response.status_code} {body[:80]}")

def docs(v: ServiceView) -> Check:
    docs, spec = v.get("/docs"), v.get("/openapi.json")
    ok = docs.status_code == 200 and spec.status_code == 200 and "paths" in spec.json()
    return Check("docs", ok, [docs.status_code, spec.status_code], [200, 200],
                 f"GET /docs -> {docs.status_code}, GET /openapi.json -> {spec.status_code}")

def database(v: ServiceCheck) -> Check:
    connected = bool(wait_until(lambda: "database connection OK" in v.logs(), timeout=30 * v.slowdown,
                                interval=0.2))
    ready = v.get("/ready")
    psql = v.sh(cmdline.podman_exec(v.profile, v.name, "psql", v.running.dsn, "-tAc", "SELECT 1"), ok=(0, 1, 2))
    psql_ok = psql.code == 0 and psql.stdout.strip() == "1"
    # One write and read through the API proves the pool, the schema and the auth path together.
    token = v.token("usr_verify")
    headers = {"Authorization": f"Bearer {token}"}
    created = v.http.post(f"{v.base}/api/usr_verify/tasks", json={"title": "verify"}, headers=headers,
                             timeout=5)
    listed = v.get("/api/usr_verify/tasks", headers=headers)
    api_ok = created.status_code == 201 and listed.status_code == 200 and len(listed.json()) >= 1
    ok = connected and ready.status_code == 200 and psql_ok and api_ok
    detail = (f"log 'database connection OK': {'yes' if connected else 'no'}; /ready {ready.status_code}; "
              f"psql in image: {'ok' if psql_ok else (psql.stderr or psql.stdout).strip()[:120]}; "
              f"API write/read: {created.status_code}/{listed.status_code}")
    return Check("database", ok, {"ready": ready.status_code, "psql": psql_ok, "api": api_ok}, "all ok", detail)

def env(v: ServiceCheck) -> Check:
    logs = v.logs()
    line = next((ln for ln in logs.splitlines() if "settings loaded:" in ln), "")
    expected = ["DATABASE_URL=<set>", "BETTER_AUTH_SECRET=<set>", "OPENAI_API_KEY=<set>",
                "AGENT_MODEL=gpt-4o", f"FRONTEND_URL={FRONTEND}", "MCP_RESOURCE_URL=<set>",
                f"MCP_AUTHORIZATION_SERVER={ISSUER}"]
    missing = [e for e in expected if e not in line]
    leaked = [k for k, v in v.secrets.items() if v in logs]
    preflight = v.http.options(f"{v.base}/api/usr_verify/tasks", timeout=5, headers={
        "Origin": FRONTEND, "Access-Control-Request-Method": "GET"})
    cors_ok = preflight.headers.get("access-control-allow-origin") == FRONTEND
    ok = not missing and not leaked and cors_ok
    detail = ("settings as passed, AGENT_MODEL default applied, CORS allows FRONTEND_URL, no secret in logs"
              if ok else f"missing in settings log: {missing}; secrets in logs: {leaked}; CORS ok: {cors_ok}")
    return Check("env", ok, {"missing": missing, "leaked": leaked, "cors": cors_ok}, "none missing/leaked", detail)

def latency(v: ServiceCheck) -> Check:
    # under emulation the time is the emulator's on this machine, as for startup-time: the limit scales
    limit_s = v.opt.latency_limit_s * v.slowdown
    samples = []
    session = requests.Session()  # its own: it runs in a worker thread beside the other checks
    for _ in range(v.opt.latency_requests):
        t = time.perf_counter()
        r = session.get(v.base + "/health", timeout=limit_s * 5)
        samples.append(time.perf_counter() - t)
        if r.status_code != 200:
            return Check("health-latency", False, None, limit_s, f"/health answered {r.status_code}")
    p99 = statistics.quantiles(samples, n=100)[98]
    p50 = statistics.median(samples)
    return Check("health-latency", p99 < limit_s, round(p99 * 1000, 2), limit_s * 1000,
                 f"p99 {p99 * 1000:.1f} ms, p50 {p50 * 1000:.1f} ms over {len(samples)} requests (limit "
                 f"{limit_s * 1000:g} ms)")

def health_flags(config: dict[str, Any], *, start_period: float | None = None,
                 slowdown: int = 1) -> cmdline.HealthFlags | None:
    """The image's own HEALTHCHECK on podman's command line, with `start_period` for the image's where given
    and its timeout `slowdown` times the image's (under qemu one run of the check is mostly the emulator
    starting Python: 3 s measured the machine, not the image). None when the image has no HEALTHCHECK."""
    try:
        h = deployment.health_of(config)
    except UsageError:
        return None
    return cmdline.HealthFlags(h.command, h.interval, h.timeout * slowdown,
                               h.start_period if start_period is None else start_period, h.retries)


def idle_health_flags(config: dict[str, Any], *, slowdown: int = 1) -> cmdline.HealthFlags | None:
    """The image's own HEALTHCHECK (command, interval, timeout, retries) with a start period of 0 for the
    container where nothing listens: its failures count at once, so `retries` runs prove `unhealthy` without
    waiting out the start period (the critical path of verify). The image's start period is still read and
    reported, and the serving container keeps the image's timings. None when the image has no HEALTHCHECK."""
    return health_flags(config, start_period=0, slowdown=slowdown)


def serving_health_flags(config: dict[str, Any], *, slowdown: int) -> cmdline.HealthFlags | None:
    """None natively (the image's HEALTHCHECK as it is); under emulation the image's, its timeout scaled."""
    return health_flags(config, slowdown=slowdown) if slowdown > 1 else None


def start_idle(v: CheckRun) -> float:
    """The not-serving container health-status needs, started as verify begins; returns when it started."""
    v.sh(cmdline.podman_run(v.profile, v.image, name=v.idle_name, detach=True, labels=v.opt.labels,
                             entrypoint="", command=["python", "-c", "import time; time.sleep(600)"],
                             health=idle_health_flags(v.config, slowdown=v.slowdown)))
    return time.monotonic()


def _health_timings(v: CheckRun) -> tuple[int, float]:
    """The image's HEALTHCHECK retries and start period (seconds)."""
    hc = v.config.get("Healthcheck") or {}
    return int(hc.get("Retries") or 3), (hc.get("StartPeriod") or 0) / 1e9


def not_serving_health(v: CheckRun) -> str:
    """On the container where nothing listens, exactly `retries` failed runs must give unhealthy: after one
    fewer it is still `starting` (runs back to back: the interval only spaces real-life checks; the start
    period is 0 on this container, see idle_health_flags)."""
    retries, _ = _health_timings(v)
    v.idle_started.result()
    for n in range(1, retries + 1):
        # 125 as well: a run that exceeds the HEALTHCHECK's timeout is logged as a failed run and podman
        # then exits 125 (seen under qemu, where python starts slowly); the status read below decides
        v.sh(cmdline.podman_healthcheck_run(v.profile, v.idle_name), ok=(0, 1, 125))
        if n == retries - 1 and (early := _health(v, v.idle_name)) != "starting":
            return f"{early} after {n} of {retries} runs"
    return _health(v, v.idle_name)


def health_status(v: CheckRun) -> Check:
    hc = v.config.get("Healthcheck") or {}
    test = hc.get("Test") or []
    if not test or test[0] == "NONE":
        return Check("health-status", False, None, "healthy", "the image has no HEALTHCHECK")
    retries, start_period = _health_timings(v)
    # podman schedules checks with systemd timers; without systemd we drive them: one run on the
    # serving container must give healthy ...
    run = v.sh(cmdline.podman_healthcheck_run(v.profile, v.name), ok=(0, 1))
    status = _health(v, v.name)
    healthy = run.code == 0 and status == "healthy"
    idle_status = (v.idle_health if v.idle_health is not None else
                   v.idle_proof.result() if v.idle_proof is not None else not_serving_health(v))
    ok = healthy and idle_status == "unhealthy"
    return Check("health-status", ok, {"serving": status, "not-serving": idle_status},
                 {"serving": "healthy", "not-serving": "unhealthy"},
                 f"serving container: {status}; nothing listening after {retries} runs: {idle_status} "
                 f"(the image's start period {start_period:g} s, 0 on that container; retries {retries})")


def _health(v: RunTools, name: str) -> str:
    facts = podman.container(v.profile, name, stage="verify")
    return facts.health if facts else "missing"


# Run by the image's own Python inside the serving container (the image has no coreutils): what the service
# process (PID 1) really has, not the flags verify passed to podman.
HARDENED_PROBE = """
import errno, json, os
status = dict(line.split(":", 1) for line in open("/proc/1/status") if ":" in line)
try:
    open("/.imagepipe-write-probe", "w").close()
    root = "writable"
except OSError as e:
    root = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps({"capeff": status["CapEff"].strip(), "uid": status["Uid"].split()[1], "root": root}))
"""


def hardened(v: ServiceCheck) -> Check:
    probe = v.sh(cmdline.podman_exec(v.profile, v.name, "python", "-c", HARDENED_PROBE), ok=(0, 1, 125, 126, 127))
    try:
        seen = json.loads(probe.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return Check("hardened", False, None, "CapEff 0, EROFS, uid != 0",
                     f"could not look inside the container: {(probe.stderr or probe.stdout).strip()[:160]}")
    serving = v.get("/health").status_code == 200
    no_caps = int(seen["capeff"], 16) == 0
    ok = no_caps and seen["root"] == "EROFS" and seen["uid"] != "0" and serving
    return Check("hardened", ok, seen, {"capeff": "0", "root": "EROFS", "uid": "not 0"},
                 f"inside the container: PID 1 CapEff {seen['capeff']}, uid {seen['uid']}; a write to / fails with "
                 f"{seen['root']}; serving {'yes' if serving else 'no'}")
