"""Command line: `python build/pipeline.py [STAGE] [options]`; without a stage, all of them in order."""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from imagepipe import base, commands, hostenv, lint, registry, report, reproducible, runner, wheels
from imagepipe.errors import EXIT_CHECKS_FAILED, LintFailed, PipelineError, ToolFailed, UsageError
from imagepipe.verify import Verifier, VerifyOptions, VerifyResult

log = logging.getLogger("imagepipe")
T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("provision", "base", "lint", "build", "push", "verify", "promote")
REF_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
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


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python build/pipeline.py",
        description="Build the backend image with buildah, push it, verify it with podman, promote it.",
    )
    p.add_argument("stage", nargs="?", default="all",
                   choices=["all", *STAGES, "registry", "test", "bench", "load"],
                   help="run one stage (default: all in order); `registry` manages the embedded registry; "
                        "`test` provisions the host and runs the test suite")
    p.add_argument("target", nargs="*", help="verify: the image to verify; registry: start|stop|status; "
                                             "test: arguments passed to pytest")
    p.add_argument("--registry", default=registry.DEFAULT_ADDR,
                   help="registry HOST[:PORT] to push to (default: the embedded one on %(default)s)")
    p.add_argument("--repo", default="todo-backend", help="repository name in the registry (default: %(default)s)")
    p.add_argument("--tag", action="append", default=[], help="extra tag to promote besides latest (repeatable)")
    p.add_argument("--creds", help="USER:PASSWORD for the registry (default: the usual auth file)")
    p.add_argument("--authfile", type=Path, help="registry auth file (default: containers' usual auth.json)")
    p.add_argument("--containerfile", type=Path, default=ROOT / "build/Containerfile")
    p.add_argument("--context", type=Path, default=ROOT / "backend", help="build context (default: backend/)")
    p.add_argument("--base-image", help="use this image as python:3.11-slim (tagged locally under that name)")
    p.add_argument("--rebuild-base", action="store_true", help="rebuild the offline base stand-in")
    p.add_argument("--offline", action="store_true",
                   help="install Python packages from a host-side wheelhouse (built once, then no network)")
    p.add_argument("--max-size", type=float, default=150.0, help="size limit in MB (default: %(default)s)")
    p.add_argument("--database-url", help="verify against this database (as the container sees it) instead of "
                                          "a throw-away PostgreSQL")
    p.add_argument("--no-provision", action="store_true", help="skip the provision stage")
    p.add_argument("--report", type=Path, help="write the JSON report here")
    p.add_argument("--junit", type=Path, help="write JUnit XML here")
    p.add_argument("--keep", action="store_true", help="keep the verify containers for debugging")
    p.add_argument("--state-dir", type=Path, default=Path(os.environ.get("IMAGEPIPE_STATE", ROOT / ".state")))
    p.add_argument("--json", action="store_true", help="bench: print the figures as JSON")
    p.add_argument("--bench-runs", type=int, default=3, help="bench: start-up runs to take the median of")
    p.add_argument("-v", "--verbose", action="store_true", help="stream the tools' output; tracebacks on errors")
    return p.parse_args(argv)


def validate(args: argparse.Namespace) -> None:
    if not REF_RE.match(args.repo):
        raise UsageError(f"invalid repository name {args.repo!r}: use lowercase letters, digits and . _ - / "
                         "(e.g. --repo todo-backend)")
    for tag in args.tag:
        if not TAG_RE.match(tag):
            raise UsageError(f"invalid tag {tag!r}: up to 128 of A-Z a-z 0-9 _ . - , not starting with . or -")
    if not re.match(r"^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-fA-F:]+\](:\d{1,5})?$", args.registry):
        raise UsageError(f"invalid registry {args.registry!r}: give HOST or HOST:PORT (e.g. 127.0.0.1:5000)")
    if args.max_size <= 0:
        raise UsageError("--max-size must be a positive number of MB")
    if args.creds is not None and ":" not in args.creds:
        raise UsageError("--creds must be USER:PASSWORD")


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


@contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """One pipeline at a time per state directory (registry data, wheelhouse, reports)."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(state_dir / "pipeline.lock", "w")  # noqa: SIM115 - held for the whole run
    except OSError as e:
        raise UsageError(f"cannot use the state directory {state_dir}: {e.strerror} (fix its permissions or "
                         "free disk space, or pass --state-dir)") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another pipeline run to finish (lock {state_dir / 'pipeline.lock'})", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()


def stage(ctx: Context, name: str, what: str, fn: Callable[[], T]) -> T:
    print(f"==> {name}: {what}", flush=True)
    t0 = time.monotonic()
    try:
        result = fn()
    except PipelineError as e:
        e.stage = e.stage or name
        raise
    ctx.timings[name] = time.monotonic() - t0
    print(f"    {name} done in {ctx.timings[name]:.1f} s", flush=True)
    return result


# --- stages -----------------------------------------------------------------------------------------------


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
    import hashlib

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


def do_build(ctx: Context) -> str:
    check_context(ctx.args)
    hostenv.ensure_mount_namespace(ctx.profile)
    tag = git_tag(ctx.args)
    image = f"localhost/{ctx.args.repo}:{tag}"
    house = wheels.wheelhouse(ctx.args.context / "requirements.txt", ctx.state_dir) if ctx.args.offline else None
    argv = commands.buildah_bud(
        ctx.profile, containerfile=ctx.args.containerfile, context=ctx.args.context, tags=[image],
        # Offline builds get no CA bundle: pip could not reach PyPI even if it tried, which proves the
        # wheelhouse alone served the Python packages.
        ca_bundle=CA_BUNDLE if CA_BUNDLE.exists() and house is None else None,
        wheelhouse=house,
        build_args={"WHEELHOUSE": house.name} if house else None,
        timestamp=commit_time(),
    )
    try:
        runner.run(argv, stage="build", timeout=3600, what="buildah bud")
    except ToolFailed as e:
        unresolved = re.search(r"No matching distribution found for (\S+)", e.output)
        if unresolved:
            raise PipelineError(f"requirements.txt names {unresolved.group(1)}, which pip cannot find: fix the "
                                f"name or version in {ctx.args.context / 'requirements.txt'}", stage="build",
                                detail=e.output) from None
        raise
    if "-dirty-" not in tag and not tag.startswith("nogit-"):
        # A commit's build gets a content-only config, so two clean builds of it share one digest. Dirty
        # trees skip this (1-2 s): their digest names no commit anyway, and edit-build loops want speed.
        reproducible.rewrite(image, work_dir=ctx.state_dir)
    ctx.local_image = image
    print(f"    built {image}")
    return image


def do_push(ctx: Context) -> str:
    if ctx.local_image is None:
        ctx.local_image = f"localhost/{ctx.args.repo}:{git_tag(ctx.args)}"
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
    (ctx.state_dir / "last-push.json").write_text(json.dumps({"tag": dest, "image": ctx.pushed}) + "\n")
    print(f"    pushed {dest}\n    digest {digest}")
    return ctx.pushed


def ensure_registry(ctx: Context) -> None:
    """A loopback registry that does not answer is started as the embedded one (own data directory)."""
    if commands.registry_is_local(ctx.args.registry):
        state = registry.EmbeddedRegistry(ctx.state_dir, ctx.args.registry).ensure_running()
        if state == "started":
            print(f"    embedded registry started on {ctx.args.registry} (stop: python build/pipeline.py registry stop)")
    elif registry.probe(ctx.args.registry) == "down":
        raise PipelineError(f"registry {ctx.args.registry} is unreachable: start it or fix --registry",
                            stage="push")


def do_verify(ctx: Context, image: str | None = None) -> VerifyResult:
    image = image or ctx.pushed
    if image is None:
        raise UsageError("nothing to verify: give an image (python build/pipeline.py verify REGISTRY/REPO@DIGEST)")
    hostenv.ensure_mount_namespace(ctx.profile)
    options = VerifyOptions(max_size_mb=ctx.args.max_size, database_url=ctx.args.database_url,
                            state_dir=ctx.state_dir, keep=ctx.args.keep)
    result = Verifier(ctx.profile, image, options).run()
    ctx.verify_result = result
    return result


def do_promote(ctx: Context) -> list[str]:
    assert ctx.pushed is not None and ctx.verify_result is not None
    if not ctx.verify_result.passed:  # never reached from main(); a guard against future callers
        raise PipelineError("refusing to promote an image that failed verification", stage="promote")
    digest = ctx.pushed.rsplit("@", 1)[1]
    promoted = []
    for tag in ["latest", *ctx.args.tag]:
        dest = f"{ctx.args.registry}/{ctx.args.repo}:{tag}"
        runner.run(commands.skopeo_copy(ctx.pushed, dest, creds=ctx.args.creds), stage="promote", timeout=600,
                   what=f"tagging {tag}")
        got = json.loads(runner.run(commands.skopeo_inspect(dest, creds=ctx.args.creds), stage="promote").stdout)
        if got.get("Digest") != digest:
            raise PipelineError(f"{dest} points at {got.get('Digest')} after promotion, expected {digest}",
                                stage="promote")
        promoted.append(dest)
        print(f"    {dest} -> {digest}")
    return promoted


# --- main ---------------------------------------------------------------------------------------------------


def finish_report(ctx: Context, result: VerifyResult) -> None:
    print()
    print(report.table(result))
    extra: dict[str, Any] = {"timings": {k: round(v, 2) for k, v in ctx.timings.items()}}
    if ctx.args.report:
        report.write_json(ctx.args.report, report.as_dict(result, builder="buildah", extra=extra))
    if ctx.args.junit:
        report.write_junit(ctx.args.junit, result, builder="buildah")


def run_all(ctx: Context) -> int:
    a = ctx.args
    if not a.no_provision:
        stage(ctx, "provision", "preparing the build host (pyinfra)", lambda: do_provision(ctx))
    stage(ctx, "base", "python:3.11-slim", lambda: do_base(ctx))
    stage(ctx, "lint", str(a.containerfile.relative_to(ROOT) if a.containerfile.is_relative_to(ROOT)
                           else a.containerfile), lambda: do_lint(ctx))
    stage(ctx, "build", "buildah bud", lambda: do_build(ctx))
    stage(ctx, "push", f"to {a.registry}", lambda: do_push(ctx))
    result = stage(ctx, "verify", f"{ctx.pushed}", lambda: do_verify(ctx))
    if not result.passed:
        finish_report(ctx, result)
        print(f"verification failed: latest was not moved ({a.registry}/{a.repo}:latest is unchanged)")
        return EXIT_CHECKS_FAILED
    stage(ctx, "promote", "tag the verified digest", lambda: do_promote(ctx))
    finish_report(ctx, result)
    return 0


def run_one(ctx: Context) -> int:
    a = ctx.args
    name = a.stage
    if name == "registry":
        return registry_command(ctx)
    if name == "provision":
        stage(ctx, "provision", "preparing the build host (pyinfra)", lambda: do_provision(ctx))
    elif name == "base":
        stage(ctx, "base", "python:3.11-slim", lambda: do_base(ctx))
    elif name == "lint":
        stage(ctx, "lint", str(a.containerfile), lambda: do_lint(ctx))
    elif name == "build":
        stage(ctx, "build", "buildah bud", lambda: do_build(ctx))
    elif name == "push":
        stage(ctx, "push", f"to {a.registry}", lambda: do_push(ctx))
    elif name == "verify":
        if len(a.target) != 1:
            raise UsageError("verify takes one image: python build/pipeline.py verify REGISTRY/REPO@DIGEST")
        result = stage(ctx, "verify", a.target[0], lambda: do_verify(ctx, a.target[0]))
        finish_report(ctx, result)
        return 0 if result.passed else EXIT_CHECKS_FAILED
    elif name == "bench":
        return run_bench(ctx)
    elif name == "load":
        return run_load(ctx)
    elif name == "promote":
        raise UsageError("promote runs only after a passing verify: run the whole pipeline")
    return 0


def run_bench(ctx: Context) -> int:
    import platform

    from imagepipe import bench

    hostenv.ensure_mount_namespace(ctx.profile)
    stage(ctx, "base", "python:3.11-slim", lambda: do_base(ctx))
    machine = (f"{time.strftime('%Y-%m-%d')} · {platform.node()} · {os.cpu_count()} cores · "
               f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB · {platform.platform()}")
    metrics = stage(ctx, "bench", "ours vs the naive baseline",
                    lambda: bench.Bench(ctx.profile, ctx.state_dir, runs=ctx.args.bench_runs).run())
    text = bench.as_json(metrics, machine=machine) if ctx.args.json else bench.render(metrics, machine=machine)
    (ctx.state_dir / "bench-last.json").write_text(bench.as_json(metrics, machine=machine) + "\n")
    print(text)
    return 0


def run_load(ctx: Context) -> int:
    """A bounded load test of an image (default: this commit's local build): 0 errors, flat memory and
    database connections after the run, or exit 1."""
    from imagepipe import bench

    hostenv.ensure_mount_namespace(ctx.profile)
    image = ctx.args.target[0] if ctx.args.target else f"localhost/{ctx.args.repo}:{git_tag(ctx.args)}"
    if not base.image_exists(ctx.profile, image):
        raise UsageError(f"no image {image}: build it first (python build/pipeline.py build) or name one")
    result = stage(ctx, "load", f"{image}: wrk 60 s at concurrency 32 on the tasks API",
                   lambda: bench.load_test(ctx.profile, ctx.state_dir, image))
    print(json.dumps(result, indent=2))
    (ctx.state_dir / "load-last.json").write_text(json.dumps(result, indent=2) + "\n")
    ok = result["errors"] == 0 and result["rss_growth_mb"] < 20 and result["connection_growth"] <= 0
    print("load test passed: no errors, memory and connections flat" if ok else "load test FAILED")
    return 0 if ok else EXIT_CHECKS_FAILED


def registry_command(ctx: Context) -> int:
    action = (ctx.args.target or ["status"])[0]
    reg = registry.EmbeddedRegistry(ctx.state_dir, ctx.args.registry)
    if action == "start":
        print(f"registry {reg.ensure_running()} on {reg.addr} (data: {reg.dir / 'data'})")
    elif action == "stop":
        print("registry stopped" if reg.stop() else "registry was not running (from this state directory)")
    elif action == "status":
        state = registry.probe(reg.addr)
        print(f"{reg.addr}: {state}" + (f" (pid {reg.pid()}, data {reg.dir / 'data'})" if reg.pid() else ""))
    else:
        raise UsageError(f"unknown registry action {action!r}: use start, stop or status")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Progress (logging included) goes to stdout; stderr carries only the error line and its detail.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="    %(message)s",
                        stream=sys.stdout)
    for noisy in ("urllib3", "sh", "pyinfra"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    runner.VERBOSE = args.verbose
    try:
        validate(args)
        if args.stage == "test":
            from imagepipe.testcmd import run_tests

            return run_tests(args)
        ctx = Context(args=args, profile=hostenv.detect(), state_dir=args.state_dir.resolve())
        with state_lock(ctx.state_dir):
            return run_all(ctx) if args.stage == "all" else run_one(ctx)
    except PipelineError as e:
        where = f"[{e.stage}] " if e.stage else ""
        print(f"error: {where}{e.message}", file=sys.stderr)
        if e.detail:
            print("    " + "\n    ".join(e.detail.splitlines()[-runner.TAIL_LINES:]), file=sys.stderr)
        if args.verbose:
            traceback.print_exc()
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the outer edge: one line, the traceback only on request
        print(f"internal error: {type(e).__name__}: {e} (re-run with --verbose for the traceback)", file=sys.stderr)
        if args.verbose:
            traceback.print_exc()
        return 70
