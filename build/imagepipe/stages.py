"""The pipeline's stages (provision, base, lint, build, push, verify, promote) on a shared Context."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from imagepipe import base, buildsteps, cancel, commands, hostenv, kaniko, lint, registry, reproducible, runner, wheels
from imagepipe.errors import LintFailed, PipelineError, ToolFailed, UsageError, pip_failure
from imagepipe.paths import ROOT
from imagepipe.verify import Verifier, VerifyOptions, VerifyResult

log = logging.getLogger("imagepipe")

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass
class Context:
    args: argparse.Namespace
    profile: hostenv.HostProfile
    state_dir: Path
    timings: dict[str, float] = field(default_factory=dict)
    local_image: str | None = None
    pushed: str | None = None  # registry/repo@sha256:...
    verify_result: VerifyResult | None = None
    build_steps: list[buildsteps.Step] = field(default_factory=list)
    build_window: tuple[float, float] = (0.0, 0.0)  # wall-clock start and finish of the build (provenance)
    builder_version: str = ""
    published: dict[str, object] = field(default_factory=dict)  # signature, sbom, provenance (report)
    run_id: str = "norun"

    @property
    def labels(self) -> dict[str, str]:
        """Put on every container this run starts, so a later run can tell its leftovers from others'."""
        return {cancel.LABEL: self.run_id}



def write_state(path: Path, data: dict[str, object]) -> None:
    """State files are replaced whole (a cancelled run leaves the old one, never half a new one)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    tmp.replace(path)


def check_context(args: argparse.Namespace) -> None:
    ctx, cf = args.context, args.containerfile
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


def do_provision(ctx: Context) -> None:
    from imagepipe.provision import provision

    result = provision(verbose=ctx.args.verbose)
    if result.changed:
        print(f"    changed: {', '.join(result.changed)}")
    else:
        print("    no changes: the host was already prepared")


def do_base(ctx: Context) -> None:
    hostenv.ensure_mount_namespace(ctx.profile)
    print(f"    {base.ensure_base(ctx.profile, state_dir=ctx.state_dir, override=ctx.args.base_image, rebuild=ctx.args.rebuild_base)}")


def do_lint(ctx: Context) -> None:
    violations = lint.lint(ctx.args.containerfile, hadolint_config=ROOT / "build/hadolint.yaml")
    for v in violations:
        print(f"    {v.render(ctx.args.containerfile)}")
    if violations:
        first = violations[0]
        raise LintFailed(f"{len(violations)} Containerfile violation(s), first: line {first.line} "
                              f"{first.rule}: {first.message}", stage="lint")
    print("    contract rules FR-001..FR-010, NFR-002 and hadolint: clean")


def content_hash(args: argparse.Namespace) -> str:
    """Hash of the Containerfile and the context's files (what the build reads), for tags of dirty trees."""
    h = hashlib.sha256(args.containerfile.read_bytes())
    for path in sorted(args.context.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc"):
            h.update(str(path.relative_to(args.context)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:10]


def commit_time() -> int | None:
    """SOURCE_DATE_EPOCH, else the commit's time: fixed image and file timestamps make builds reproducible."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        return int(runner.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"]).stdout.strip())
    except (PipelineError, ValueError):
        return None


def git_tag(args: argparse.Namespace) -> str:
    """The git short SHA; a tree that differs from the commit (or lives outside it) adds a content hash, so
    a tag never names two different images."""
    try:
        sha = runner.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"]).stdout.strip()
    except (ToolFailed, PipelineError):
        return f"nogit-{content_hash(args)}"
    inside = args.context.resolve().is_relative_to(ROOT) and args.containerfile.resolve().is_relative_to(ROOT)
    dirty = runner.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", str(args.context.resolve()),
                        str(args.containerfile.resolve())]).stdout.strip() if inside else "outside"
    return f"{sha}-dirty-{content_hash(args)}" if dirty else sha


def local_image(args: argparse.Namespace) -> str:
    """The local name the build stage gives this tree's image."""
    return f"localhost/{args.repo}:{git_tag(args)}"


def build_argv(profile: hostenv.HostProfile, *, containerfile: Path, context: Path, image: str,
               wheelhouse: Path | None, no_cache: bool = False) -> list[str]:
    """How this project runs buildah (the build stage and the benchmark alike)."""
    return commands.buildah_bud(
        profile, containerfile=containerfile, context=context, tags=[image],
        # Offline builds get no CA bundle: pip could not reach PyPI even if it tried, which proves the
        # wheelhouse alone served the Python packages.
        ca_bundle=CA_BUNDLE if CA_BUNDLE.exists() and wheelhouse is None else None,
        wheelhouse=wheelhouse,
        build_args={"WHEELHOUSE": wheelhouse.name} if wheelhouse else None,
        timestamp=commit_time(),
        no_cache=no_cache,
    )


def do_build(ctx: Context) -> str:
    check_context(ctx.args)
    hostenv.ensure_mount_namespace(ctx.profile)
    image = local_image(ctx.args)
    tag = image.rsplit(":", 1)[1]
    house = wheels.wheelhouse(ctx.args.context / "requirements.txt", ctx.state_dir) if ctx.args.offline else None
    argv = build_argv(ctx.profile, containerfile=ctx.args.containerfile, context=ctx.args.context, image=image,
                      wheelhouse=house)
    timer = buildsteps.StepTimer("buildah")
    ctx.build_window = (time.time(), 0.0)
    ctx.builder_version = runner.run(["buildah", "--version"]).stdout.split()[2]
    try:
        runner.run(argv, stage="build", timeout=3600, what="buildah bud", on_line=timer.line)
    except ToolFailed as e:
        explained = pip_failure(e.output, ctx.args.context)
        if explained:
            raise explained from None
        raise
    if "-dirty-" not in tag and not tag.startswith("nogit-"):
        # A commit's build gets a content-only config, so two clean builds of it share one digest. Dirty
        # trees skip this (1-2 s): their digest names no commit anyway, and edit-build loops want speed.
        reproducible.rewrite(image, work_dir=ctx.state_dir)
    ctx.local_image = image
    ctx.build_window = (ctx.build_window[0], time.time())
    ctx.build_steps = timer.finish()
    print(buildsteps.render(ctx.build_steps))
    print(f"    built {image}")
    return image


def do_push(ctx: Context) -> str:
    if ctx.local_image is None:
        ctx.local_image = local_image(ctx.args)
        if not base.image_exists(ctx.profile, ctx.local_image):
            raise UsageError(f"no local image {ctx.local_image}: run the build stage first "
                             "(python build/pipeline.py build)")
    ensure_registry(ctx)
    tag = ctx.local_image.rsplit(":", 1)[1]
    dest = f"{ctx.args.registry}/{ctx.args.repo}:{tag}"
    digestfile = ctx.state_dir / "push.digest"
    digestfile.unlink(missing_ok=True)
    argv = commands.buildah_push(ctx.local_image, dest, digestfile=digestfile, creds=ctx.args.creds,
                                 authfile=ctx.args.authfile)
    for attempt in range(1, 4):
        try:
            runner.run(argv, stage="push", timeout=1800, what="buildah push")
            break
        except ToolFailed as e:
            if re.search(r"unauthorized|authentication required|denied", e.output, re.I):
                raise PipelineError(f"the registry {ctx.args.registry} refused the credentials: pass "
                                    "--creds USER:PASSWORD or log in with `podman login` (auth file)",
                                    stage="push", detail=e.output) from None
            if attempt == 3:
                raise PipelineError(f"push to {ctx.args.registry} failed 3 times: {e.message} (is the registry "
                                    "up? `python build/pipeline.py registry status`)", stage="push",
                                    detail=e.output) from None
            log.warning("push attempt %d failed (%s); retrying", attempt, e.message)
            time.sleep(2 * attempt)
    digest = digestfile.read_text().strip()
    ctx.pushed = f"{ctx.args.registry}/{ctx.args.repo}@{digest}"
    write_state(ctx.state_dir / "last-push.json", {"tag": dest, "image": ctx.pushed})
    print(f"    pushed {dest}\n    digest {digest}")
    return ctx.pushed


def ensure_registry(ctx: Context) -> None:
    """The embedded registry is started only when it was asked for (the default, or `--registry embedded`);
    an address the user names is used as it is, never replaced by one we start."""
    if ctx.args.embedded:
        state = registry.EmbeddedRegistry(ctx.state_dir, ctx.args.registry).ensure_running()
        if state == "started":
            print(f"    embedded registry started on {ctx.args.registry} (stop: python build/pipeline.py registry stop)")
    elif registry.probe(ctx.args.registry) != "registry":
        raise PipelineError(f"registry {ctx.args.registry} is unreachable (nothing answers there as a registry): "
                            "start it or fix --registry (omit it to use the embedded one)", stage="push")


def do_kaniko_build(ctx: Context) -> str:
    """kaniko builds and pushes in one go (it has no local image store); the digest comes from its
    termination log, as in the cluster."""
    check_context(ctx.args)
    hostenv.ensure_mount_namespace(ctx.profile)
    a = ctx.args
    try:
        ensure_registry(ctx)
    except PipelineError as e:
        e.stage = "build"
        raise
    executor = kaniko.executor_image(ctx.profile, a.kaniko_image)
    if commands.registry_is_local(a.registry):
        kaniko.seed_mirror(ctx.profile, a.registry)
    tag = f"{git_tag(a)}-kaniko"
    house = wheels.wheelhouse(a.context / "requirements.txt", ctx.state_dir) if a.offline else None
    ctx.build_window = (time.time(), 0.0)
    ctx.builder_version = executor.rsplit(":", 1)[-1]
    build = kaniko.build_local(
        ctx.profile, executor=executor, context=a.context, containerfile=a.containerfile,
        destination=f"{a.registry}/{a.repo}:{tag}", cache_repo=f"{a.registry}/{a.repo}/cache",
        registry=a.registry, work_dir=ctx.state_dir / "kaniko", labels=ctx.labels, creds=a.creds,
        authfile=a.authfile, wheelhouse=house, run_id=ctx.run_id)
    ctx.pushed = f"{a.registry}/{a.repo}@{build.digest}"
    ctx.build_window = (ctx.build_window[0], time.time())
    ctx.build_steps = build.steps
    print(buildsteps.render(build.steps))
    write_state(ctx.state_dir / "last-push.json", {"tag": build.destination, "image": ctx.pushed, "builder": "kaniko"})
    print(f"    kaniko ({executor}) pushed {build.destination}\n    digest {build.digest}")
    return ctx.pushed


def git_source() -> tuple[str, str]:
    """The repository and branch the cluster's Job clones (it builds what was pushed, not this tree)."""
    try:
        url = runner.run(["git", "-C", str(ROOT), "remote", "get-url", "origin"]).stdout.strip()
        ref = runner.run(["git", "-C", str(ROOT), "rev-parse", "--abbrev-ref", "HEAD"]).stdout.strip()
    except PipelineError:
        raise UsageError("--kube-context builds from git: give this repository a remote `origin` the cluster "
                         "can clone, and push the branch") from None
    return url, ref


def git_source_or_path() -> tuple[str, str]:
    """(where the source lives, the commit) for provenance; a tree without git is named by its path."""
    try:
        commit = runner.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"]).stdout.strip()
    except PipelineError:
        return f"file://{ROOT}", "none"
    remote = runner.run(["git", "-C", str(ROOT), "remote", "get-url", "origin"], ok_codes=(0, 2, 128)).stdout.strip()
    return (f"git+{remote}" if remote else f"git+file://{ROOT}"), commit


def do_cluster_build(ctx: Context) -> str:
    from imagepipe import kanikojob, kubejob

    a = ctx.args
    if commands.registry_is_local(a.registry):
        raise UsageError(f"--kube-context pushes from the cluster: give a --registry it can reach ({a.registry} "
                         "is this machine's loopback)")
    url, ref = git_source()
    tag = f"{git_tag(a)}-kaniko"
    job = kanikojob.load()
    args = kanikojob.rewrite(kanikojob.executor_args(job), {
        "--destination": f"{a.registry}/{a.repo}:{tag}", "--cache-repo": f"{a.registry}/{a.repo}/cache"})
    body = kanikojob.job_for(job, name=f"todo-backend-kaniko-{ctx.run_id}", args=args, git_url=url, git_ref=ref,
                             labels=ctx.labels)
    digest = kubejob.run_job(a.kube_context, a.kube_namespace, body, on_log=lambda line: print(f"    | {line}"))
    ctx.pushed = f"{a.registry}/{a.repo}@{digest}"
    print(f"    the Job pushed {a.registry}/{a.repo}:{tag}\n    digest {digest}")
    return ctx.pushed


def do_verify(ctx: Context, image: str | None = None) -> VerifyResult:
    image = image or ctx.pushed
    if image is None:
        raise UsageError("nothing to verify: give an image (python build/pipeline.py verify REGISTRY/REPO@DIGEST)")
    hostenv.ensure_mount_namespace(ctx.profile)
    options = VerifyOptions(max_size_mb=ctx.args.max_size, database_url=ctx.args.database_url,
                            state_dir=ctx.state_dir, keep=ctx.args.keep, labels=ctx.labels)
    result = Verifier(ctx.profile, image, options).run()
    ctx.verify_result = result
    return result


def remove_run_containers(profile: hostenv.HostProfile, run_id: str) -> int:
    """Every container of this run, whatever state it is in: podman's by their label (verify, bench, kaniko),
    buildah's working containers (mounted images) by their name."""
    removed = 0
    if shutil.which("buildah") is not None:
        # bounded: a build killed mid-step can hold buildah's storage lock for a moment; clean-up goes on
        with contextlib.suppress(ToolFailed):
            names = runner.run(["buildah", "containers", "--format", "{{.ContainerName}}"], ok_codes=(0, 1, 125),
                               timeout=10).stdout
            ours = [n for n in names.split() if n.startswith(f"imagepipe-{run_id}-")]
            if ours:
                runner.run(["buildah", "rm", *ours], ok_codes=(0, 1, 125), timeout=20)
                removed += len(ours)
    if shutil.which("podman") is None:
        return removed
    hostenv.ensure_mount_namespace(profile)
    ids = runner.run(commands.podman(profile, "ps", "-a", "-q", "--filter", f"label={cancel.LABEL}={run_id}"),
                     ok_codes=(0, 125), timeout=30).stdout.split()
    if ids:
        runner.run(commands.podman(profile, "rm", "-f", "-t", "0", *ids), ok_codes=(0, 1, 125), timeout=60)
    return removed + len(ids)


def clean_leftovers(ctx: Context, run: cancel.Run) -> None:
    """What a killed run on this state directory left behind (its marker names it): removed before we start."""
    for marker in cancel.leftovers(ctx.state_dir, own=run.id):
        containers = remove_run_containers(ctx.profile, marker["id"])
        databases = sum(cancel.kill_postgres(Path(d)) for d in marker.get("postgres", []))
        for leftover in (ctx.state_dir / "kaniko").glob(f"kaniko-{marker['id']}.*"):
            leftover.unlink(missing_ok=True)  # its termination log, or a docker config holding credentials
        Path(marker["_marker"]).unlink(missing_ok=True)
        print(f"    cleaned up after interrupted run {marker['id']}: {containers} container(s), "
              f"{databases} throw-away PostgreSQL")
