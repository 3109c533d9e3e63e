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
from pathlib import Path
from typing import Any, TypeVar

from imagepipe import base, cancel, commands, hostenv, registry, report, runner
from imagepipe.errors import EXIT_CHECKS_FAILED, PipelineError, UsageError
from imagepipe.promote import do_promote
from imagepipe.sigserver import SignatureServer
from imagepipe.stages import (
    ROOT,
    Context,
    clean_leftovers,
    do_base,
    do_build,
    do_cluster_build,
    do_kaniko_build,
    do_lint,
    do_provision,
    do_push,
    do_verify,
    local_image,
    remove_run_containers,
)
from imagepipe.verify import VerifyResult

log = logging.getLogger("imagepipe")
T = TypeVar("T")

STAGES = ("provision", "base", "lint", "build", "push", "verify", "promote")
EMBEDDED = "embedded"
REF_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")



def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python build/pipeline.py",
        description="Build the backend image with buildah, push it, verify it with podman, promote it.",
    )
    p.add_argument("stage", nargs="?", default="all",
                   choices=["all", *STAGES, "registry", "test", "bench", "load", "parity", "trust", "attest"],
                   help="run one stage (default: all in order); `registry` manages the embedded registry; "
                        "`test` provisions the host and runs the test suite")
    p.add_argument("target", nargs="*", help="verify: the image to verify; registry: start|stop|status; "
                                             "test: arguments passed to pytest")
    p.add_argument("--registry", default=EMBEDDED,
                   help="registry HOST[:PORT] to push to, used as given; `embedded` (the default) starts "
                        "Debian's docker-registry on 127.0.0.1:--embedded-port")
    p.add_argument("--embedded-port", type=int, default=registry.DEFAULT_PORT,
                   help="port of the embedded registry on loopback (default: %(default)s)")
    p.add_argument("--builder", choices=("buildah", "kaniko"), default="buildah",
                   help="buildah (local image, then push) or kaniko (the executor image in podman, or the "
                        "Job of ci/kaniko.yaml with --kube-context); default: %(default)s")
    p.add_argument("--kaniko-image", help="the kaniko executor image (default: the one pinned in ci/kaniko.yaml)")
    p.add_argument("--kube-context", help="build with kaniko as the Job of ci/kaniko.yaml in this cluster "
                                          "context (kubeconfig), then verify and promote here")
    p.add_argument("--kube-namespace", default="default", help="namespace of the Job (default: %(default)s)")
    p.add_argument("--signing-key", help="GPG fingerprint in your keyring to sign with (default: the pipeline's "
                                         "own key, generated once into the state directory)")
    p.add_argument("--lookaside", help="URL where consumers read signatures (default: the signature server on "
                                       "127.0.0.1:--sigserver-port, serving <state>/sigstore/lookaside)")
    p.add_argument("--sigserver-port", type=int, default=5080, help="port of the signature server (loopback)")
    p.add_argument("--public-key", type=Path, help="attest verify / trust: the signer's public key (default: the "
                                                   "pipeline key's, <state>/signing/pipeline-key.pub)")
    p.add_argument("--install", action="store_true", help="trust: install the policy system-wide")
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
    args.embedded = args.registry == EMBEDDED
    if args.embedded:
        if not 0 < args.embedded_port < 65536:
            raise UsageError(f"invalid --embedded-port {args.embedded_port}: give a TCP port (1-65535)")
        args.registry = f"{registry.LOOPBACK}:{args.embedded_port}"
    elif not re.match(r"^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-fA-F:]+\](:\d{1,5})?$", args.registry):
        raise UsageError(f"invalid registry {args.registry!r}: give HOST or HOST:PORT (e.g. 127.0.0.1:5000), "
                         "or `embedded`")
    if args.kube_context:
        args.builder = "kaniko"
    if args.max_size <= 0:
        raise UsageError("--max-size must be a positive number of MB")
    if args.creds is not None and ":" not in args.creds:
        raise UsageError("--creds must be USER:PASSWORD")


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


CURRENT_STAGE = ["start-up"]  # named in the one line a cancelled run prints


def stage(ctx: Context, name: str, what: str, fn: Callable[[], T]) -> T:
    print(f"==> {name}: {what}", flush=True)
    CURRENT_STAGE[0] = name
    cancel.stage_delay(name)
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


# --- main ---------------------------------------------------------------------------------------------------


def finish_report(ctx: Context, result: VerifyResult) -> None:
    print()
    print(report.table(result))
    builder = ctx.args.builder
    extra: dict[str, Any] = {"timings": {k: round(v, 2) for k, v in ctx.timings.items()}}
    if "build" in ctx.timings:
        extra["build_seconds"] = round(ctx.timings["build"], 2)
    if ctx.build_steps:
        extra["build_steps"] = [s.as_dict() for s in ctx.build_steps]
    extra.update(ctx.published)
    if ctx.args.report:
        report.write_json(ctx.args.report, report.as_dict(result, builder=builder, extra=extra))
    if ctx.args.junit:
        report.write_junit(ctx.args.junit, result, builder=builder)


def build_and_push(ctx: Context) -> None:
    """buildah: build a local image, then push it. kaniko: one step that pushes itself (locally in podman,
    or as the Job in a cluster with --kube-context)."""
    a = ctx.args
    if a.builder == "buildah":
        stage(ctx, "build", "buildah bud", lambda: do_build(ctx))
        stage(ctx, "push", f"to {a.registry}", lambda: do_push(ctx))
    elif a.kube_context:
        stage(ctx, "build", f"kaniko Job in {a.kube_context}", lambda: do_cluster_build(ctx))
    else:
        stage(ctx, "build", "kaniko executor (podman), pushing to " + a.registry, lambda: do_kaniko_build(ctx))


def run_all(ctx: Context) -> int:
    a = ctx.args
    if not a.no_provision:
        stage(ctx, "provision", "preparing the build host (pyinfra)", lambda: do_provision(ctx))
    stage(ctx, "base", "python:3.11-slim", lambda: do_base(ctx))
    stage(ctx, "lint", str(a.containerfile.relative_to(ROOT) if a.containerfile.is_relative_to(ROOT)
                           else a.containerfile), lambda: do_lint(ctx))
    build_and_push(ctx)
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
    elif name == "build" and a.builder == "kaniko":
        build_and_push(ctx)
    elif name == "build":
        stage(ctx, "build", "buildah bud", lambda: do_build(ctx))
    elif name == "push" and a.builder == "kaniko":
        raise UsageError("kaniko pushes as it builds: run `python build/pipeline.py build --builder kaniko`")
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
    elif name == "parity":
        return run_parity(ctx)
    elif name == "trust":
        return run_trust(ctx)
    elif name == "attest":
        return run_attest(ctx)
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
    runner_ = bench.Bench(ctx.profile, ctx.state_dir, runs=ctx.args.bench_runs, kaniko_image=ctx.args.kaniko_image,
                          labels=ctx.labels)
    metrics = stage(ctx, "bench", "ours vs the naive baseline, and kaniko", runner_.run)
    as_json = bench.as_json(metrics, machine=machine, details=runner_.details)
    text = as_json if ctx.args.json else bench.render(metrics, machine=machine) + bench.render_details(runner_.details)
    (ctx.state_dir / "bench-last.json").write_text(as_json + "\n")
    print(text)
    return 0


def run_parity(ctx: Context) -> int:
    """Build the tree with both builders, compare configs, file trees and layers; exit 1 on any difference
    no rule explains."""
    from imagepipe import parity

    a = ctx.args
    stage(ctx, "base", "python:3.11-slim", lambda: do_base(ctx))
    stage(ctx, "lint", str(a.containerfile), lambda: do_lint(ctx))
    stage(ctx, "build", "buildah bud", lambda: do_build(ctx))
    stage(ctx, "push", f"to {a.registry}", lambda: do_push(ctx))
    buildah_ref = ctx.pushed
    assert buildah_ref is not None
    seconds = {"buildah": ctx.timings["build"]}
    stage(ctx, "kaniko", "kaniko executor (podman)", lambda: do_kaniko_build(ctx))
    seconds["kaniko"] = ctx.timings["kaniko"]
    kaniko_ref = ctx.pushed
    assert kaniko_ref is not None
    for ref in (buildah_ref, kaniko_ref):
        runner.run(commands.podman_pull(ctx.profile, ref), stage="parity", timeout=600, what=f"pulling {ref}")
    result = stage(ctx, "parity", "configs, file trees, layers", lambda: parity.compare(buildah_ref, kaniko_ref))
    result.seconds = seconds
    print(parity.render(result))
    if a.report:
        report.write_json(a.report, result.as_dict())
    return 0 if result.passed else EXIT_CHECKS_FAILED


def public_key(ctx: Context) -> Path:
    key = ctx.args.public_key or ctx.state_dir / "signing" / "pipeline-key.pub"
    if not key.is_file():
        raise UsageError(f"no public key at {key}: run the pipeline once (it creates the signing key) or pass "
                         "--public-key PATH")
    return Path(key)


def lookaside_url(ctx: Context) -> str:
    return ctx.args.lookaside.rstrip("/") if ctx.args.lookaside else f"http://127.0.0.1:{ctx.args.sigserver_port}"


def run_trust(ctx: Context) -> int:
    from imagepipe import trust

    a = ctx.args
    files = trust.write(f"{a.registry}/{a.repo}", public_key=public_key(ctx), lookaside=lookaside_url(ctx),
                        state_dir=ctx.state_dir, install=a.install)
    print(f"policy: {files.policy} (images of {a.registry}/{a.repo} must be signed by {files.public_key})")
    print(f"signatures read from {lookaside_url(ctx)} ({files.registries_d})")
    if not a.install:
        print(f"use: podman pull --signature-policy {files.policy} … (lookaside: copy {files.registries_d}/* to "
              "/etc/containers/registries.d/, or rerun with --install)")
    return 0


def run_attest(ctx: Context) -> int:
    from imagepipe import attest

    a = ctx.args
    if len(a.target) != 2 or a.target[0] != "verify":
        raise UsageError("usage: python build/pipeline.py attest verify REGISTRY/REPO@sha256:…")
    problems = attest.verify(a.target[1], public_key=public_key(ctx), lookaside=lookaside_url(ctx), creds=a.creds)
    for problem in problems:
        print(f"attest: {problem}", file=sys.stderr)
    if problems:
        return EXIT_CHECKS_FAILED
    print(f"{a.target[1]}: signed, SBOM and provenance attached, signed and naming this digest")
    return 0


def run_load(ctx: Context) -> int:
    """A bounded load test of an image (default: this commit's local build): 0 errors, flat memory and
    database connections after the run, or exit 1."""
    from imagepipe import bench

    hostenv.ensure_mount_namespace(ctx.profile)
    image = ctx.args.target[0] if ctx.args.target else local_image(ctx.args)
    if not base.image_exists(ctx.profile, image):
        raise UsageError(f"no image {image}: build it first (python build/pipeline.py build) or name one")
    result = stage(ctx, "load", f"{image}: wrk 60 s at concurrency 32 on the tasks API",
                   lambda: bench.load_test(ctx.profile, ctx.state_dir, image, labels=ctx.labels))
    print(json.dumps(result, indent=2))
    (ctx.state_dir / "load-last.json").write_text(json.dumps(result, indent=2) + "\n")
    ok = result["errors"] == 0 and result["rss_growth_mb"] < 20 and result["connection_growth"] <= 0
    print("load test passed: no errors, memory and connections flat" if ok else "load test FAILED")
    return 0 if ok else EXIT_CHECKS_FAILED


def registry_command(ctx: Context) -> int:
    action = (ctx.args.target or ["status"])[0]
    reg = registry.EmbeddedRegistry(ctx.state_dir, ctx.args.registry)
    sigs = SignatureServer(ctx.state_dir, f"127.0.0.1:{ctx.args.sigserver_port}")
    if action in ("start", "stop") and not ctx.args.embedded:
        raise UsageError(f"`registry {action}` manages the embedded registry only: drop --registry "
                         f"{ctx.args.registry} (use --embedded-port to choose its port)")
    if action == "start":
        print(f"registry {reg.ensure_running()} on {reg.addr} (data: {reg.dir / 'data'})")
    elif action == "stop":
        print("registry stopped" if reg.stop() else "registry was not running (from this state directory)")
        if sigs.stop():
            print("signature server stopped")
    elif action == "status":
        state = registry.probe(reg.addr)
        where = " (embedded, bound to loopback only)" if ctx.args.embedded else ""
        print(f"{reg.addr}: {state}{where}" + (f" (pid {reg.pid()}, data {reg.dir / 'data'})" if reg.pid() else ""))
        print(f"signatures {sigs.url}: {'serving' if sigs.pid() and sigs.answers() else 'not running'} (lighttpd, "
              f"bound to loopback only, {sigs.store})")
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
    cancel.install()
    try:
        validate(args)
        if args.stage == "test":
            from imagepipe.testcmd import run_tests

            return run_tests(args)
        ctx = Context(args=args, profile=hostenv.detect(), state_dir=args.state_dir.resolve())
        # The lock is taken first and released last: the run's cleanup (containers, databases, marker) runs
        # while no other run can start on this state directory.
        with state_lock(ctx.state_dir), cancel.running(cancel.Run(ctx.state_dir)) as run:
            ctx.run_id = run.id
            run.callback(lambda: remove_run_containers(ctx.profile, run.id))
            clean_leftovers(ctx, run)
            return run_all(ctx) if args.stage == "all" else run_one(ctx)
    except cancel.Interrupted as e:
        cancel.acknowledge()
        print(f"interrupted by {e.name} during the {CURRENT_STAGE[0]} stage: its tools were stopped and what it "
              "started was removed; no tag was moved", file=sys.stderr)
        cancel.exit_now(e.exit_code)
        return e.exit_code  # not reached
    except PipelineError as e:
        where = f"[{e.stage}] " if e.stage else ""
        print(f"error: {where}{e.message}", file=sys.stderr)
        if e.detail:
            print("    " + "\n    ".join(e.detail.splitlines()[-runner.TAIL_LINES:]), file=sys.stderr)
        if args.verbose:
            traceback.print_exc()
        return e.exit_code
    except Exception as e:  # the outer edge: one line, the traceback only on request
        print(f"internal error: {type(e).__name__}: {e} (re-run with --verbose for the traceback)", file=sys.stderr)
        if args.verbose:
            traceback.print_exc()
        return 70
