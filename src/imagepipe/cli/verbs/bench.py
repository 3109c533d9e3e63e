"""`pipeline.py bench [--json] [--bench-runs N]`: the benchmark (imagepipe.benchmark), printed and kept in
<state>/bench-last.json."""

from __future__ import annotations

import os
import platform
import time

from imagepipe.benchmark import bench, figures, kanikotrials
from imagepipe.exec import exitcodes
from imagepipe.host import quirks
from imagepipe.pipeline.context import Context
from imagepipe.pipeline.stagetable import BY_NAME, run_stage, timed
from imagepipe.ui import output


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{time.strftime('%Y-%m-%d')} · {platform.node()} · {os.cpu_count()} cores · {memory:.0f} GiB · "
            f"{platform.platform()}")


def run(ctx: Context) -> int:
    a = ctx.args
    quirks.ensure_mount_namespace(ctx.profile)
    run_stage(ctx, BY_NAME["base"])
    runner_ = bench.Bench(ctx.profile, ctx.state_dir, runs=a.benching.runs, kaniko_image=a.building.kaniko_image,
                          labels=ctx.labels, kaniko_trials=a.benching.kaniko_trials, platforms=a.platforms,
                          advisories=(a.verifying.vuln_db, a.verifying.vuln_db_max_age))
    metrics = timed(ctx, "bench", "ours vs the naive baseline, and kaniko", runner_.run)
    as_json = figures.as_json(metrics, machine=machine(), details=runner_.details)
    text = as_json if a.json else figures.render(metrics, machine=machine()) + figures.render_details(runner_.details)
    if runner_.trials and not a.json:
        text += "\n" + kanikotrials.render(runner_.trials)
    (ctx.state_dir / "bench-last.json").write_text(as_json + "\n")
    output.block(text)
    return exitcodes.OK
