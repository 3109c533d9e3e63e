"""bench's service figures, measured fairly: ours and the baseline alternate, ours first in odd rounds and
the baseline first in even ones, for `rounds` rounds; each figure is the median of its rounds, with the
spread (min-max) kept, so the order of measurement cannot decide a ratio.

Per round and image: `podman run` -> first 200, the resident memory (VmRSS of the service's process
tree, read on the host) right after start, after 1,200 mixed API requests and after a chat turn (against
the local OpenAI stand-in), /health p99 over 1,000 requests, then the tasks API under wrk with 1 and with 2
uvicorn workers."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

import psutil
import requests

from imagepipe.benchmark.harness import SECRET, Harness
from imagepipe.checks.tokens import mint_hs256
from imagepipe.host import podman
from imagepipe.ui import output

USER = "usr_bench_mix"


def rss_mb(h: Harness, name: str) -> float:
    """The container's process tree's resident memory, in MB (uvicorn with one worker is one process)."""
    facts = podman.container(h.profile, name, stage="bench")
    if facts is None or not facts.pid:
        return 0.0
    root = psutil.Process(facts.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 1e6


def mixed_requests(base: str, n: int = 1200) -> None:
    """What a client does: create, list, read, update, complete, delete, and /health, in turn."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {mint_hs256(SECRET, USER, ttl=3600)}"
    tasks, done = f"{base}/api/{USER}/tasks", 0
    while done < n:
        made = http.post(tasks, json={"title": f"mix {done}", "tags": ["bench"], "priority": "low"}, timeout=10)
        task = made.json()["id"]
        http.get(tasks, timeout=10)
        http.get(f"{tasks}/{task}", timeout=10)
        http.put(f"{tasks}/{task}", json={"title": f"mixed {done}", "priority": "high"}, timeout=10)
        http.patch(f"{tasks}/{task}/complete", timeout=10)
        http.delete(f"{tasks}/{task}", timeout=10)
        http.get(f"{base}/health", timeout=10)
        done += 7


def chat_turn(base: str) -> int:
    token = mint_hs256(SECRET, USER, ttl=3600)
    r = requests.post(f"{base}/api/{USER}/chat", json={"message": "what is on my list?"}, timeout=60,
                      headers={"Authorization": f"Bearer {token}"})
    return r.status_code


def one_round(h: Harness, image: str, dsn: str, openai_url: str, out: dict[str, list[Any]]) -> None:
    name, base, seconds = h.start_container(image, dsn, env={"OPENAI_BASE_URL": openai_url})
    try:
        out["start_s"].append(seconds)
        out["rss_start_mb"].append(rss_mb(h, name))
        mixed_requests(base)
        out["rss_mixed_mb"].append(rss_mb(h, name))
        out["chat_status"].append(chat_turn(base))
        out["rss_chat_mb"].append(rss_mb(h, name))
        out["health_p99_ms"].append(h.health_p99(base))
        record_load(out, h.api_load(base), "")
    finally:
        h.stop_container(name)
    name, base, _ = h.start_container(image, dsn, env={"WEB_CONCURRENCY": "2", "OPENAI_BASE_URL": openai_url})
    try:
        record_load(out, h.api_load(base), "_2w")
    finally:
        h.stop_container(name)


def record_load(out: dict[str, list[Any]], load: tuple[float, float, int], suffix: str) -> None:
    """wrk's (req/s, p99 ms, errors) under api_rps, api_p99_ms, api_errors (+ suffix)."""
    for key, value in zip(("api_rps", "api_p99_ms", "api_errors"), load, strict=True):
        out[key + suffix].append(value)


def measure(h: Harness, images: dict[str, str], *, dsn: str, openai_url: str, rounds: int) -> dict[str, dict[str, Any]]:
    """{variant: figures}, each the median of `rounds` alternating rounds; `<figure>_runs` keeps them all."""
    samples: dict[str, dict[str, list[Any]]] = {name: defaultdict(list) for name in images}
    for r in range(rounds):
        order = list(images) if r % 2 == 0 else list(reversed(images))
        for name in order:
            output.say(f"service round {r + 1}/{rounds}: {name}")
            one_round(h, images[name], dsn, openai_url, samples[name])
    out: dict[str, dict[str, Any]] = {}
    for name, figures in samples.items():
        summary: dict[str, Any] = {}
        for key, values in figures.items():
            if key.endswith("errors") or key.endswith("errors_2w"):
                summary[key] = sum(values)
            elif key == "chat_status":
                summary[key] = values
            else:
                summary[key] = statistics.median(values)
                summary[f"{key}_runs"] = [round(v, 3) for v in values]
        out[name] = summary
    return out


def spread(figures: dict[str, Any], key: str, digits: int = 1) -> str:
    runs = figures.get(f"{key}_runs") or []
    return f"{round(min(runs), digits)}-{round(max(runs), digits)}" if runs else "-"
