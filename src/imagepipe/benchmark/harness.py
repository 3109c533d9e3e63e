"""The benchmark's harness: builds timed per step, pushes measured in bytes the registry stored, the
service started and probed (start-up, /health latency, the tasks API under wrk)."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from imagepipe.builders import buildsteps, reproducible
from imagepipe.checks.tokens import mint_hs256
from imagepipe.checks.types import ISSUER
from imagepipe.errors import PipelineError
from imagepipe.exec import cmdline, runner
from imagepipe.exec.retry import wait_until
from imagepipe.host import git, podman
from imagepipe.host.profile import HostProfile
from imagepipe.image.platforms import Platform
from imagepipe.pipeline.stages.build import build_argv
from imagepipe.services.postgres import free_port

SECRET = "bench-secret-" + "b" * 32


@dataclass
class Variant:
    name: str
    containerfile: Path
    figures: dict[str, Any] = field(default_factory=dict)


class Harness:
    def __init__(self, profile: HostProfile, state_dir: Path, *, runs: int = 3, load_seconds: int = 10,
                 kaniko_image: str | None = None, labels: dict[str, str] | None = None,
                 kaniko_trials: bool = False, platforms: tuple[Platform, ...] = (),
                 advisories: tuple[Path | None, float] = (None, 7.0)) -> None:
        self.profile = profile
        self.vuln_db, self.vuln_db_max_age = advisories  # verify's advisory source (checks.advisories)
        self.platforms = platforms  # other architectures get rows of their own (benchmark.platformbench)
        self.kaniko_trials = kaniko_trials
        self.trials: list[dict[str, Any]] = []
        # One stamp for every build of the run: a commit made while the benchmark runs must not make its
        # two clean builds differ (the reproducibility figure compares them).
        self.timestamp = git.commit_time() or 0
        self.labels = labels or {}  # on every container the bench starts (the run's, for cancellation)
        self.kaniko_image = kaniko_image
        self.work = state_dir / "bench"
        self.state_dir = state_dir
        self.runs, self.load_seconds = runs, load_seconds
        self.registry_addr = f"127.0.0.1:{free_port()}"
        self.details: dict[str, Any] = {}  # size by directory, per-step build times, per-check verify times

    # --- helpers -------------------------------------------------------------------------------------

    def build(self, variant: Variant, context: Path, tag: str, *, cold: bool, wheelhouse: Path | None,
              commit_build: bool = False, steps_key: str | None = None, platform: Platform | None = None) -> float:
        argv = build_argv(self.profile, containerfile=variant.containerfile, context=context, image=tag,
                          wheelhouse=wheelhouse, no_cache=cold, timestamp=self.timestamp, platform=platform)
        timer = buildsteps.StepTimer("buildah")
        t0 = time.monotonic()
        runner.run(argv, stage="bench", timeout=3600, what=f"building {tag}", on_line=timer.line)
        if commit_build:  # as the pipeline's build stage does for a clean commit
            reproducible.rewrite(tag, work_dir=self.work)
        if steps_key:
            variant.figures[steps_key] = [s.as_dict() for s in timer.finish()]
        return time.monotonic() - t0

    def blob_bytes(self) -> int:
        blobs = self.work / "registry/data/docker/registry/v2/blobs"
        return sum(p.stat().st_size for p in blobs.rglob("data")) if blobs.exists() else 0

    def push(self, image: str, repo_tag: str) -> tuple[int, str]:
        before = self.blob_bytes()
        digestfile = self.work / "digest"
        runner.run(cmdline.buildah_push(image, f"{self.registry_addr}/{repo_tag}", digestfile=digestfile),
                   stage="bench", timeout=1800)
        return self.blob_bytes() - before, digestfile.read_text().strip()

    def compressed_bytes(self, image: str, compression: str) -> int:
        """The bytes of `image`'s layers compressed with `compression` (gzip, zstd): what a node pulls on
        first deploy. Measured from a dir: copy, since a push would reuse the layers the registry has."""
        layout = self.work / f"compressed-{compression}"
        shutil.rmtree(layout, ignore_errors=True)
        runner.run(cmdline.skopeo_to_dir(f"containers-storage:{image}", layout, compress=compression),
                   stage="bench", timeout=600)
        manifest = json.loads((layout / "manifest.json").read_text())
        try:
            return sum(int(layer["size"]) for layer in manifest["layers"])
        finally:
            shutil.rmtree(layout, ignore_errors=True)

    def start_container(self, image: str, dsn: str, env: dict[str, str] | None = None) -> tuple[str, str, float]:
        name, port = f"imagepipe-bench-{free_port()}", free_port()
        t0 = time.monotonic()
        runner.run(cmdline.podman_run(self.profile, image, name=name, detach=True, labels=self.labels,
                                       publish=[f"127.0.0.1:{port}:8000"],
                                       env={"DATABASE_URL": dsn, "BETTER_AUTH_SECRET": SECRET,
                                            "OPENAI_API_KEY": "sk-bench", "MCP_AUTHORIZATION_SERVER": ISSUER,
                                            "MCP_RESOURCE_URL": f"http://127.0.0.1:{port}/mcp", **(env or {})}),
                   stage="bench")
        base = f"http://127.0.0.1:{port}"

        def answered() -> float | None:
            try:
                return time.monotonic() - t0 if requests.get(base + "/health", timeout=1).status_code == 200 else None
            except requests.RequestException:
                return None

        seconds = wait_until(answered, timeout=60, interval=0.02)
        if seconds is None:
            raise PipelineError(f"{image} did not answer /health within 60 s", stage="bench")
        return name, base, seconds

    def image_facts(self, ref: str) -> podman.ImageFacts:
        facts = podman.image(self.profile, ref, stage="bench")
        if facts is None:
            raise PipelineError(f"{ref} is not in local storage", stage="bench")
        return facts

    def layers(self, image: str) -> list[str]:
        return list(self.image_facts(image).layers)

    def stop_container(self, name: str) -> None:
        runner.run(cmdline.podman_rm(self.profile, name, grace=2), stage="bench", ok_codes=(0, 1, 125), timeout=300)

    def health_p99(self, base: str, n: int = 1000) -> float:
        session = requests.Session()
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            session.get(base + "/health", timeout=5)
            samples.append(time.perf_counter() - t)
        return statistics.quantiles(samples, n=100)[98] * 1000

    def api_load(self, base: str, concurrency: int = 16) -> tuple[float, float, int]:
        """GET /api/{user}/tasks with 50 tasks at `concurrency` for load_seconds: (req/s, p99 ms, errors)."""
        user = "usr_bench"
        headers = {"Authorization": f"Bearer {mint_hs256(SECRET, user, ttl=3600)}"}
        wait_until(lambda: requests.get(base + "/ready", timeout=5).status_code == 200, timeout=30, interval=0.2)
        existing = requests.get(f"{base}/api/{user}/tasks", headers=headers, params={"limit": 200}, timeout=10).json()
        for i in range(50 - len(existing)):
            requests.post(f"{base}/api/{user}/tasks", headers=headers, timeout=10,
                          json={"title": f"task {i}", "tags": ["bench"], "priority": "medium"})
        out = runner.run(cmdline.wrk(f"{base}/api/{user}/tasks", concurrency=concurrency,
                                      seconds=self.load_seconds, headers=headers),
                         stage="bench", timeout=self.load_seconds + 60).stdout
        rps = float(grab(r"Requests/sec:\s+([\d.]+)", out, "wrk's requests/s"))
        p99 = _wrk_ms(grab(r"99%\s+([\d.]+\w+)", out, "wrk's p99"))
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        count = int(errors.group(1)) if errors else 0
        if socket_errors:
            count += sum(int(x) for x in socket_errors.groups())
        return rps, p99, count

def _wrk_ms(text: str) -> float:
    value, unit = float(grab(r"^([\d.]+)", text, "a wrk duration")), re.sub(r"[\d.]+", "", text)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}.get(unit, 1.0)


def grab(pattern: str, text: str, what: str) -> str:
    """The first group of `pattern` in a tool's output, or an error naming what was missing."""
    found = re.search(pattern, text)
    if found is None:
        raise PipelineError(f"no {what} in the tool's output: {text[-200:]!r}", stage="bench")
    return found.group(1)
