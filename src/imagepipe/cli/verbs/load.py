"""`pipeline.py load [IMAGE]`: a bounded load test of an image (default: this commit's local build): no
errors, flat memory and database connections after the run, or exit 1."""

from __future__ import annotations

import json

from imagepipe.benchmark import load
from imagepipe.errors import UsageError
from imagepipe.exec import exitcodes
from imagepipe.host import git, podman, quirks
from imagepipe.pipeline.context import Context
from imagepipe.pipeline.stagetable import timed
from imagepipe.ui import output


def run(ctx: Context) -> int:
    quirks.ensure_mount_namespace(ctx.profile)
    image = ctx.args.target[0] if ctx.args.target else str(git.local_image(ctx.args))
    if not podman.image_exists(ctx.profile, image):
        raise UsageError(f"no image {image}: build it first (python build/pipeline.py build) or name one")
    result = timed(ctx, "load", f"{image}: wrk 60 s at concurrency 32 on the tasks API",
                   lambda: load.load_test(ctx.profile, ctx.state_dir, image, labels=ctx.labels))
    output.block(json.dumps(result, indent=2))
    (ctx.state_dir / "load-last.json").write_text(json.dumps(result, indent=2) + "\n")
    ok = result["errors"] == 0 and result["rss_growth_mb"] < 20 and result["connection_growth"] <= 0
    output.block("load test passed: no errors, memory and connections flat" if ok else "load test FAILED")
    return exitcodes.OK if ok else exitcodes.CHECKS_FAILED
