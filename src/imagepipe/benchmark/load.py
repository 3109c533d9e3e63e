"""`pipeline.py load`: a bounded load test of one image on loopback (wrk on the tasks API), with the
service's memory and database connections before and after."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from imagepipe.benchmark.harness import Harness, grab
from imagepipe.checks.types import CONTAINER_HOST
from imagepipe.exec import cmdline, runner
from imagepipe.host import podman
from imagepipe.host.profile import HostProfile
from imagepipe.services import containernet, postgres


def load_test(profile: HostProfile, state_dir: Path, image: str, *, seconds: int = 60,
              concurrency: int = 32, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Bounded load on loopback: wrk on the tasks API, then memory and DB connections before/after."""
    bench = Harness(profile, state_dir, load_seconds=seconds, labels=labels)
    pg = postgres.for_containers(*containernet.bridge(profile, image, labels=labels))
    try:
        pg.start()
        name, base, _ = bench.start_container(image, pg.dsn(host=CONTAINER_HOST))
        try:
            facts = podman.container(profile, name, stage="bench")
            assert facts is not None, "started above"
            pid = facts.pid

            def rss_mb() -> float:
                status = Path(f"/proc/{pid}/status").read_text()
                return int(grab(r"VmRSS:\s+(\d+)", status, "resident memory")) / 1024

            def db_connections() -> int:
                sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'todo'"
                out = runner.run(cmdline.psql(pg.bindir, dsn=pg.superuser_dsn("todo"), sql=sql)).stdout
                return int(out.strip())

            # Warm up (pool filled, code paths imported), then measure the steady state around the run.
            bench.load_seconds = 5
            bench.api_load(base, concurrency=concurrency)
            before = {"rss_mb": rss_mb(), "db_connections": db_connections()}
            bench.load_seconds = seconds
            rps, p99, errors = bench.api_load(base, concurrency=concurrency)
            time.sleep(5)
            after = {"rss_mb": rss_mb(), "db_connections": db_connections()}
        finally:
            bench.stop_container(name)
    finally:
        pg.stop()
    return {"seconds": seconds, "concurrency": concurrency, "requests_per_s": round(rps), "p99_ms": round(p99, 1),
            "errors": errors, "before": before, "after": after,
            "rss_growth_mb": round(after["rss_mb"] - before["rss_mb"], 1),
            "connection_growth": after["db_connections"] - before["db_connections"]}
