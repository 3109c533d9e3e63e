"""Stage `build`: the image built from the Containerfile, by buildah (a local image, pushed next), or by
kaniko (which pushes as it builds: in podman here, or as ci/kaniko.yaml's Job in a cluster)."""

from __future__ import annotations

import time
from pathlib import Path

from imagepipe.builders import buildsteps, kaniko, reproducible, wheels
from imagepipe.errors import PipelineError, ToolFailed, UsageError, pip_failure
from imagepipe.exec import cmdline, runner, tooloutput
from imagepipe.host import emulation, git, profile, quirks
from imagepipe.image.containerfile import base_ref
from imagepipe.image.platforms import Platform
from imagepipe.image.refs import BuildFacts, BuiltImage, ImageRef, PushedImage
from imagepipe.paths import HOST_CA_BUNDLE
from imagepipe.pipeline.context import Context, write_state
from imagepipe.pipeline.options import BuildingOptions
from imagepipe.pipeline.stages.push import ensure_registry
from imagepipe.ui import output


def check_context(b: BuildingOptions) -> None:
    ctx, cf = b.context, b.containerfile
    if not cf.is_file():
        raise UsageError(f"Containerfile not found: {cf} (pass --containerfile PATH)")
    if not ctx.is_dir():
        raise UsageError(f"build context not found: {ctx} (pass --context DIR, normally backend/)")
    missing = [d for d in ("app", "agents", "mcp") if not (ctx / d).is_dir()]
    if missing:
        raise UsageError(f"build context {ctx} lacks {', '.join(d + '/' for d in missing)}: the image must "
                         "contain app/, agents/ and mcp/ (contract FR-009)")
    if not (ctx / "requirements.txt").is_file():
        raise UsageError(f"{ctx}/requirements.txt is missing: the builder installs dependencies from it")


def build_argv(profile: profile.HostProfile, *, containerfile: Path, context: Path, image: str,
               wheelhouse: Path | None, no_cache: bool = False, timestamp: int | None = None,
               platform: Platform | None = None, build_ca: Path | None = None) -> list[str]:
    """How this project runs buildah (the build stage and the benchmark alike); files and the image are
    stamped with `timestamp`, by default the commit's time (git.commit_time). Another architecture
    (`platform`) builds from that platform's base under emulation; the host's own adds no flag, so its
    layers are the same as a plain build's."""
    foreign = platform is not None and platform.emulated
    return cmdline.buildah_bud(
        profile, containerfile=containerfile, context=context, tags=[image],
        # Offline builds get no CA bundle: pip could not reach PyPI even if it tried, which proves the
        # wheelhouse alone served the Python packages.
        ca_bundle=build_ca_bundle(build_ca) if wheelhouse is None else None,
        wheelhouse=wheelhouse,
        build_args={"WHEELHOUSE": wheelhouse.name} if wheelhouse else None,
        timestamp=git.commit_time() if timestamp is None else timestamp,
        no_cache=no_cache,
        platform=str(platform) if foreign else None,
        from_image=base_ref(platform) if platform is not None and foreign else None,
    )


def build_ca_bundle(given: Path | None) -> Path | None:
    """The CA bundle a local build's RUN steps trust for pip: --build-ca, else the host's own bundle."""
    return given or (HOST_CA_BUNDLE if HOST_CA_BUNDLE.exists() else None)


def run(ctx: Context, _: None = None) -> list[BuiltImage] | list[PushedImage]:
    """`build` on its own, for the chosen builder and each platform (the whole job calls buildah() or
    with_kaniko() itself)."""
    if ctx.args.building.builder == "buildah":
        return [buildah(ctx, p) for p in ctx.args.platforms]
    return [with_kaniko(ctx, p) for p in ctx.args.platforms]


def with_kaniko(ctx: Context, platform: Platform | None = None) -> PushedImage:
    """kaniko pushes as it builds: in the cluster with --kube-context, else the executor in podman."""
    return cluster(ctx, platform) if ctx.args.kube.context else kaniko_local(ctx, platform)


def describe(ctx: Context) -> str:
    a = ctx.args
    if a.building.builder == "buildah":
        return "buildah bud"
    return f"kaniko Job in {a.kube.context}" if a.kube.context else f"kaniko executor (podman), pushing to {a.registry}"


def buildah(ctx: Context, platform: Platform | None = None) -> BuiltImage:
    """One platform's image (default: the first requested)."""
    check_context(ctx.args.building)
    quirks.ensure_mount_namespace(ctx.profile)
    platform = platform or ctx.args.platforms[0]
    if platform.emulated:
        emulation.require(platform.arch, stage="build")
    image = git.local_image(ctx.args, platform)
    house = (wheels.wheelhouse(ctx.args.building.context / "requirements.txt", ctx.profile, platform)
             if ctx.args.building.offline else None)
    b = ctx.args.building
    argv = build_argv(ctx.profile, containerfile=b.containerfile, context=b.context, image=str(image),
                      wheelhouse=house, platform=platform, build_ca=ctx.args.kube.build_ca)
    timer = buildsteps.StepTimer("buildah")
    started = time.time()
    version = tooloutput.buildah_version(runner.run(cmdline.buildah_version()).stdout)
    try:
        runner.run(argv, stage="build", timeout=3600, what="buildah bud", on_line=timer.line)
    except ToolFailed as e:
        explained = pip_failure(e.full, ctx.args.building.context)
        if explained:
            raise explained from None
        raise
    if git.is_commit_tag(image.tag or ""):
        # A commit's build gets a content-only config, so two clean builds of it share one digest. Dirty
        # trees skip this (1-2 s): their digest names no commit anyway, and edit-build loops want speed.
        reproducible.rewrite(str(image), work_dir=ctx.state_dir)
    facts = BuildFacts("buildah", version, tuple(timer.finish()), started, time.time(), platform=str(platform),
                       emulated=platform.emulated)
    output.block(buildsteps.render(list(facts.steps)))
    output.say(f"built {image} ({platform}{', emulated' if platform.emulated else ''})")
    return BuiltImage(image, facts)


def kaniko_local(ctx: Context, platform: Platform | None = None) -> PushedImage:
    """kaniko builds and pushes in one go (it has no local image store); the digest comes from its
    termination log, as in the cluster. Another architecture: `--custom-platform`, under emulation."""
    check_context(ctx.args.building)
    quirks.ensure_mount_namespace(ctx.profile)
    a = ctx.args
    platform = platform or a.platforms[0]
    if platform.emulated:
        emulation.require(platform.arch, stage="build")
    try:
        access = ensure_registry(ctx)
    except PipelineError as e:
        e.stage = "build"
        raise
    executor = kaniko.executor_image(ctx.profile, a.building.kaniko_image)
    if cmdline.registry_is_local(a.registry):
        if platform == a.platforms[0]:  # the first platform's run seeds every platform's base, once
            kaniko.seed_mirror(ctx.profile, a.registry, a.platforms)
    tag = kaniko_tag(ctx, platform)
    house = (wheels.wheelhouse(a.building.context / "requirements.txt", ctx.profile, platform)
             if a.building.offline else None)
    started = time.time()
    build = kaniko.build_local(
        ctx.profile, executor=executor, context=a.building.context, containerfile=a.building.containerfile,
        destination=str(ctx.repository.with_tag(tag)), cache_repo=ctx.cache_repository,
        registry=a.registry, work_dir=ctx.state_dir / "kaniko", labels=ctx.labels, auth=access.auth,
        wheelhouse=house, run_id=ctx.run_id, platform=platform, build_ca=build_ca_bundle(a.kube.build_ca))
    facts = BuildFacts("kaniko", version_of(executor), tuple(build.steps), started, time.time(),
                       platform=str(platform), emulated=platform.emulated)
    pushed = PushedImage(ctx.repository.with_digest(build.digest), tag, facts)
    output.block(buildsteps.render(build.steps))
    write_state(ctx.state_dir / "last-push.json", {"tag": build.destination, "image": str(pushed), "builder": "kaniko"})
    output.say(f"kaniko ({executor}) pushed {build.destination}\ndigest {build.digest}")
    return pushed


def cluster(ctx: Context, platform: Platform | None = None) -> PushedImage:
    """ci/kaniko.yaml's Job in the --kube-context cluster (stages.incluster)."""
    from imagepipe.pipeline.stages import incluster

    check_context(ctx.args.building)
    return incluster.build(ctx, platform or ctx.args.platforms[0])


def kaniko_tag(ctx: Context, platform: Platform | None = None) -> str:
    """kaniko's images get their own tag: a buildah image of the same tree is another image."""
    return git.platform_tag(f"{git.git_tag(ctx.args.building)}-kaniko", platform, len(ctx.args.platforms) > 1)


def version_of(executor: str) -> str:
    """The executor's version, as its image's tag says."""
    try:
        return ImageRef.parse(executor).tag or "unknown"
    except UsageError:
        return "unknown"
