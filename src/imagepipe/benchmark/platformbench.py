"""bench's per-platform rows (`bench --platform linux/amd64,linux/arm64`): for each platform other than the
host's, the same figures as ours (cold build from its wheelhouse, code-only rebuild, size, start -> first
200), marked emulated, and where an emulated build's time goes: apt, the compile (psycopg-c, in the
wheelhouse), the stdlib's compileall, each timed alone in that platform's base."""

from __future__ import annotations

import re
import shutil
import statistics
import time
from typing import Any

from imagepipe.benchmark.figures import Metric
from imagepipe.benchmark.harness import Harness, Variant
from imagepipe.builders import wheels
from imagepipe.checks import imagefs
from imagepipe.exec import cmdline, runner
from imagepipe.image import mount
from imagepipe.image.containerfile import base_ref
from imagepipe.image.platforms import Platform
from imagepipe.paths import ROOT
from imagepipe.ui import output

# Each piece of an emulated build alone, in the platform's base: `name seconds` per line.
PIECES = (
    "t() { n=$1; shift; s=$EPOCHREALTIME; \"$@\" >/dev/null 2>&1; e=$EPOCHREALTIME; "
    "awk -v n=\"$n\" -v s=\"$s\" -v e=\"$e\" 'BEGIN { printf \"%s %.2f\\n\", n, e - s }'; }; "
    "t apt-update apt-get update -o Acquire::Languages=none; "
    "t apt-install apt-get install -y --no-install-recommends binutils libpq5; "
    "t compileall python3 -m compileall -q -f -j 0 /usr/lib/python3.11")


def measure(bench: Harness, platform: Platform, dsn: str) -> dict[str, Any]:
    f: dict[str, Any] = {"platform": str(platform), "emulated": platform.emulated}
    house_root = bench.work / f"wheelhouse-{platform.slug}"  # a fresh one: its compile is a figure
    output.say(f"{platform}: wheelhouse (psycopg-c compiled{' under emulation' if platform.emulated else ''})")
    t0 = time.monotonic()
    house = wheels.wheelhouse(ROOT / "backend/requirements.txt", bench.profile, platform, root=house_root)
    f["wheelhouse_s"] = time.monotonic() - t0
    variant = Variant(f"ours-{platform.slug}", ROOT / "build/Containerfile")
    context = bench.work / f"ctx-{variant.name}"
    shutil.copytree(ROOT / "backend", context, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    image = f"localhost/bench-{variant.name}:1"
    output.say(f"{platform}: cold build")
    f["cold_build_s"] = bench.build(variant, context, image, cold=True, wheelhouse=house, steps_key="steps",
                                    platform=platform)
    f["steps"] = variant.figures["steps"]
    f["size_mb"] = bench.image_facts(image).size / 1e6
    with mount.mounted(image) as root:
        f["size_by_dir_mb"] = {k: round(v / 1e6, 1) for k, v in list(imagefs.size_by_top(root).items())[:8]}
    bench.build(variant, context, image, cold=False, wheelhouse=house, platform=platform)
    main = context / "app/main.py"
    main.write_text(main.read_text() + "\n# benchmark: a code-only change\n")
    output.say(f"{platform}: code-only rebuild")
    f["rebuild_s"] = bench.build(variant, context, f"localhost/bench-{variant.name}:2", cold=False, wheelhouse=house,
                                 platform=platform)
    starts = []
    for _ in range(bench.runs):
        name, _, seconds = bench.start_container(image, dsn)
        bench.stop_container(name)
        starts.append(seconds)
    f["start_s"], f["start_s_runs"] = statistics.median(starts), starts
    f["pieces_s"] = pieces(bench, platform)
    return f


def pieces(bench: Harness, platform: Platform) -> dict[str, float]:
    out = runner.run(cmdline.podman_run(bench.profile, base_ref(platform), remove=True, platform=str(platform),
                                         labels=bench.labels, command=["bash", "-c", PIECES]),
                     stage="bench", timeout=1800).stdout
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+) ([\d.]+)$", out, re.M)}


def platform_metrics(rows: list[dict[str, Any]], ours: dict[str, Any]) -> list[Metric]:
    """One block per platform, against ours on the host (the baseline column)."""
    out = []
    for f in rows:
        mark = f"{f['platform']}{' (emulated)' if f['emulated'] else ''}"
        pieces_s = f.get("pieces_s") or {}
        where = ", ".join(f"{k} {v:.0f} s" for k, v in pieces_s.items())
        out += [
            Metric(f"{mark}: cold build", "s", "-", round(f["cold_build_s"], 1), round(ours["cold_build_s"], 1), None,
                   f"from its wheelhouse (built in {f['wheelhouse_s']:.0f} s, psycopg-c compiled); alone: {where}"),
            Metric(f"{mark}: code-only rebuild", "s", "-", round(f["rebuild_s"], 1), round(ours["rebuild_s"], 1), None,
                   "buildah, cache warm"),
            Metric(f"{mark}: image size", "MB", "<= 110", round(f["size_mb"], 1), round(ours["size_mb"], 1),
                   f["size_mb"] <= 110, "same pruning rules; by directory in the details"),
            Metric(f"{mark}: start -> first 200", "s", "< 30 (contract)", round(f["start_s"], 2),
                   round(float(ours["start_s"]), 2) if ours.get("start_s") is not None else "-",
                   f["start_s"] < 30, "median of the runs; an emulated start is held to the contract's limit only"),
        ]
    return out
