"""`pipeline.py parity`: build the tree with both builders, compare configs, file trees and layers; exit 1 on
any difference no rule explains."""

from __future__ import annotations

from imagepipe import commands, exitcodes, output, report, runner
from imagepipe.builders import parity
from imagepipe.context import Context
from imagepipe.refs import PushedImage
from imagepipe.stages import build
from imagepipe.stagetable import BY_NAME, run_stage, timed


def run(ctx: Context) -> int:
    a = ctx.args
    for name in ("base", "lint"):
        run_stage(ctx, BY_NAME[name])
    built = timed(ctx, "build", "buildah bud", lambda: build.buildah(ctx))  # buildah whatever --builder says
    buildah_image = run_stage(ctx, BY_NAME["push"], built)
    seconds = {"buildah": ctx.timings["build"]}
    if a.kube_context:  # the Job in the cluster builds the commit; compared with this tree's buildah image
        kaniko_image: PushedImage = timed(ctx, "kaniko", f"kaniko Job in {a.kube_context}", lambda: build.cluster(ctx))
    else:
        kaniko_image = timed(ctx, "kaniko", "kaniko executor (podman)", lambda: build.kaniko_local(ctx))
    seconds["kaniko"] = ctx.timings["kaniko"]
    auth = ctx.access(stage="parity").tool
    for image in (buildah_image, kaniko_image):
        runner.run(commands.podman_pull(ctx.profile, str(image), auth=auth), stage="parity", timeout=600,
                   what=f"pulling {image}")
    result = timed(ctx, "parity", "configs, file trees, layers",
                   lambda: parity.compare(str(buildah_image), str(kaniko_image), auth))
    result.seconds = seconds
    output.block(parity.render(result))
    if a.report:
        report.write_json(a.report, result.as_dict())
    return exitcodes.OK if result.passed else exitcodes.CHECKS_FAILED
