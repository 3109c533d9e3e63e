"""Stage `push`: the local image to the registry (buildah push, retried on transient failures); the digest
the registry stored is what every later stage names."""

from __future__ import annotations

import logging
import re

from imagepipe.errors import PipelineError, ToolFailed, UsageError
from imagepipe.exec import cmdline, runner
from imagepipe.exec.retry import retry
from imagepipe.host import git, podman
from imagepipe.image.refs import BuildFacts, BuiltImage, PushedImage
from imagepipe.pipeline import multiarch
from imagepipe.pipeline.context import Context, write_state
from imagepipe.registry import embedded, protocol
from imagepipe.registry.access import Access
from imagepipe.ui import output

log = logging.getLogger("imagepipe")


def ensure_registry(ctx: Context) -> Access:
    """The embedded registry is started only when it was asked for (the default, or `--registry embedded`);
    an address the user names is used as it is, never replaced by one we start. Either way, how it is
    reached (TLS, trust, credentials) is decided here, once."""
    if ctx.args.embedded:
        embedded.EmbeddedRegistry(ctx.state_dir, ctx.args.registry).ensure_running()  # says so if it started
    return ctx.access(stage="push")


def alone(ctx: Context) -> list[BuiltImage]:
    """`push` on its own: this tree's local image, which the build stage made earlier (several platforms:
    each one's, then their index)."""
    if ctx.args.building.builder == "kaniko":
        raise UsageError("kaniko pushes as it builds: run `python build/pipeline.py build --builder kaniko`")
    images = [git.local_image(ctx.args, p) for p in ctx.args.platforms]
    for image in images:
        if not podman.image_exists(ctx.profile, str(image)):
            raise UsageError(f"no local image {image}: run the build stage first (python build/pipeline.py build"
                             f"{' --platform ' + ','.join(map(str, ctx.args.platforms)) if len(images) > 1 else ''})")
    return [BuiltImage(i, BuildFacts("buildah")) for i in images]  # built earlier, in another invocation


def run_any(ctx: Context, built: BuiltImage | list[BuiltImage]) -> PushedImage:
    """The stage: one image, or each platform's and then their index (`push --platform a,b` on its own)."""
    if isinstance(built, BuiltImage):
        return run(ctx, built)
    pushed = [(p, run(ctx, b)) for p, b in zip(ctx.args.platforms, built, strict=True)]
    if len(pushed) == 1:
        return pushed[0][1]
    return multiarch.assemble(ctx, pushed, multiarch.index_tag(pushed)).index


def run(ctx: Context, built: BuiltImage) -> PushedImage:
    """buildah's local image to the registry (kaniko pushes as it builds: `all` skips this stage for it)."""
    access = ensure_registry(ctx)
    a = ctx.args
    tag = built.ref.tag or "latest"
    dest = ctx.repository.with_tag(tag)
    digestfile = ctx.state_dir / "push.digest"
    digestfile.unlink(missing_ok=True)
    argv = cmdline.buildah_push(str(built.ref), str(dest), digestfile=digestfile, auth=access.tool)

    def refused(e: BaseException) -> bool:
        return isinstance(e, ToolFailed) and bool(
            re.search(r"unauthorized|authentication required|denied", e.output, re.I))

    try:
        retry(lambda: runner.run(argv, stage="push", timeout=1800, what="buildah push"), attempts=3,
              on=ToolFailed, unless=refused, backoff=2.0, what="push")
    except ToolFailed as e:
        if refused(e):
            if access.auth.anonymous:
                raise PipelineError(protocol.refused(access.auth, "push").message, stage="push",
                                    detail=e.output) from None
            raise PipelineError(f"the registry {a.registry} refused the push to {a.repo} with the credentials from "
                                f"{access.auth.source} (a wrong password, or no push access to {a.repo}): pass "
                                "--creds USER:PASSWORD, log in with `podman login`, or push to a repository the "
                                "account may write (--repo)", stage="push", detail=e.output) from None
        status = re.search(r"unexpected HTTP status: (5\d\d[^)\n]*)", e.output)
        if status:
            raise PipelineError(f"the registry {a.registry} answered {status.group(1).strip()} 3 times while "
                                "receiving the image (the registry's fault: see its logs); no tag was written",
                                stage="push", detail=e.output) from None
        raise PipelineError(f"push to {a.registry} failed 3 times: {e.message} (is the registry up? "
                            "`python build/pipeline.py registry status`)", stage="push", detail=e.output) from None
    pushed = PushedImage(dest.with_digest(digestfile.read_text().strip()), tag, built.facts)
    write_state(ctx.state_dir / "last-push.json", {"tag": str(dest), "image": str(pushed)})
    output.say(f"pushed {dest}\ndigest {pushed.digest}")
    return pushed
