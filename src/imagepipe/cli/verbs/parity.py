"""`pipeline.py parity`: build the tree with both builders, compare configs, file trees and layers; exit 1 on
any difference no rule explains. With --platform, for each platform (another architecture under emulation,
each builder from that platform's base)."""

from __future__ import annotations

from typing import Any

from imagepipe.builders import parity
from imagepipe.exec import cmdline, exitcodes, runner
from imagepipe.image.platforms import Platform
from imagepipe.image.refs import PushedImage
from imagepipe.pipeline import report
from imagepipe.pipeline.context import Context
from imagepipe.pipeline.stages import build
from imagepipe.pipeline.stagetable import BY_NAME, run_stage, timed
from imagepipe.ui import output


def run(ctx: Context) -> int:
    for name in ("base", "lint"):
        run_stage(ctx, BY_NAME[name])
    results = [(p, one(ctx, p)) for p in ctx.args.platforms]
    if ctx.args.verifying.report:
        data: dict[str, Any] = (results[0][1].as_dict() if len(results) == 1 else
                                {"passed": all(r.passed for _, r in results),
                                 "platforms": {str(p): r.as_dict() for p, r in results}})
        report.write_json(ctx.args.verifying.report, data)
    return exitcodes.OK if all(r.passed for _, r in results) else exitcodes.CHECKS_FAILED


def one(ctx: Context, platform: Platform) -> parity.ParityReport:
    a = ctx.args
    named = len(a.platforms) > 1 or platform.emulated
    how = f" ({platform}{', emulated' if platform.emulated else ''})" if named else ""
    built = timed(ctx, "build", f"buildah bud{how}", lambda: build.buildah(ctx, platform),  # whatever --builder says
                  key=f"buildah {platform.slug}")
    buildah_image = run_stage(ctx, BY_NAME["push"], built)
    seconds = {"buildah": ctx.timings[f"buildah {platform.slug}"]}
    if a.kube.context:  # the Job in the cluster builds the commit; compared with this tree's buildah image
        kaniko_image: PushedImage = timed(ctx, "kaniko", f"kaniko Job in {a.kube.context}{how}",
                                          lambda: build.cluster(ctx, platform), key=f"kaniko {platform.slug}")
    else:
        kaniko_image = timed(ctx, "kaniko", f"kaniko executor (podman){how}",
                             lambda: build.kaniko_local(ctx, platform), key=f"kaniko {platform.slug}")
    seconds["kaniko"] = ctx.timings[f"kaniko {platform.slug}"]
    auth = ctx.access(stage="parity").tool
    for image in (buildah_image, kaniko_image):
        runner.run(cmdline.podman_pull(ctx.profile, str(image), auth=auth), stage="parity", timeout=600,
                   what=f"pulling {image}")
    result = timed(ctx, "parity", f"configs, file trees, layers{how}",
                   lambda: parity.compare(str(buildah_image), str(kaniko_image), auth), key=f"parity {platform.slug}")
    result.seconds = seconds
    output.block(parity.render(result))
    return result
