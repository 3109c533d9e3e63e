"""`pipeline.py test`: prepare the host and the venv for the test suite, then run pytest.

One command on a fresh machine: provision (apt packages incl. PostgreSQL, buildah, podman, registry), install
the test extras and the backend's pinned requirements, run pytest. pytest's own exit code is returned, so
"no tests collected" (5) fails too.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
import tomllib
from collections.abc import Callable, Iterator

from imagepipe import venvstamp
from imagepipe.errors import PipelineError
from imagepipe.exec import runner
from imagepipe.paths import ROOT
from imagepipe.pipeline.context import Context
from imagepipe.ui import output

MULTIARCH_PLATFORMS = "linux/amd64,linux/arm64"  # what tests/e2e/test_multiarch_e2e.py builds


def run(ctx: Context) -> int:
    """The verb, with every verb's shape; run without the state directory's lock (the suite runs pipelines
    of its own, each taking it). Each set-up phase prints its time; what a phase builds is cached per machine
    (outside the clone), so on a machine that has it the phase takes a moment."""
    args = ctx.args
    phases = SetupTimes()
    if not args.no_provision:
        from imagepipe.pipeline.stages.provision import provision

        output.stage("==> test: provisioning the host")
        with phases.timed("provision"):
            result = provision(verbose=args.verbose)
        output.say(f"{'changed: ' + ', '.join(result.changed) if result.changed else 'no changes'}")
    with phases.timed("Go toolchain"):
        go = go_toolchain()
    with phases.timed("cluster binaries"):
        cluster_binaries()
    with phases.timed("interop tools"):
        tools = interop_tools() if go else False
    with phases.timed("sigstore tools"):
        signing = sigstore_tools() if go else False
    with phases.timed("admission controller"):
        admission = admission_controller() if go else False
    with phases.timed("Better Auth packages"):
        auth_server = better_auth()
    with phases.timed("stand-in bases"):
        bases = standin_bases(ctx)
    with phases.timed("wheelhouses"):
        houses = bases and wheelhouses(ctx)
    with phases.timed("test dependencies"):
        deps = test_dependencies()
    phases.report()
    if not (tools and signing and admission and auth_server and bases and houses and deps):
        return 3
    output.stage("==> test: pytest " + " ".join(args.target))
    t0 = time.monotonic()
    # the 15 slowest tests, where the suite's time goes (pytest prints them before its summary)
    code = runner.passthrough(pytest_argv(sys.executable, args.target), cwd=ROOT)
    setup = sum(phases.seconds.values())
    output.stage(f"==> test: total {setup + time.monotonic() - t0:.0f} s (set-up {setup:.0f} s, pytest "
                 f"{time.monotonic() - t0:.0f} s)")
    if code == 5:
        output.error("error: pytest collected no tests")
    return code


# The suite's lanes by default (tests/lanes.py): the cluster's modules beside the local ones. Two lanes ran
# the suite in 45 minutes instead of 68 (2026-12-07); `test -- -p no:xdist` runs it in one process.
LANES = 2


def pytest_argv(python: str, target: list[str] | tuple[str, ...]) -> list[str]:
    """pytest with the 15 slowest tests printed before its summary (where the suite's time goes), in LANES
    workers unless the arguments choose them (`-n N`, or `-p no:xdist`)."""
    chosen = any(a in ("-n", "--numprocesses", "no:xdist") or re.fullmatch(r"(-n=?|--numprocesses=)\w+", a)
                 for a in target)
    lanes = [] if chosen or LANES == 1 else ["-n", str(LANES)]  # tests/conftest.py gives xdist our scheduler
    return [python, "-m", "pytest", "--durations=15", *lanes, *target]


class SetupTimes:
    """Each set-up phase's wall time, printed as it ends and as one line before pytest starts."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = time.monotonic() - t0
            output.say(f"set-up: {name} {self.seconds[name]:.1f} s")

    def report(self) -> None:
        total = sum(self.seconds.values())
        parts = ", ".join(f"{name} {s:.1f} s" for name, s in self.seconds.items())
        output.stage(f"==> test: set-up took {total:.1f} s ({parts})")


def test_dependencies() -> bool:
    with open(ROOT / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]["test"]
    requirements = ROOT / "backend/requirements.txt"
    stamp = ROOT / ".venv/.test-deps"
    want = venvstamp.wanted(("\n".join(extras) + requirements.read_text()).encode())
    if venvstamp.is_current(stamp, want):
        return True
    output.stage("==> test: installing test dependencies and backend/requirements.txt")
    # two installs: the backend's requirements are hashed (--require-hashes covers a whole command)
    if runner.passthrough([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "--require-hashes", "-r", str(requirements)]) or \
            runner.passthrough([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                *extras]):
        output.error("error: installing the test dependencies failed (see pip's output above)")
        return False
    venvstamp.mark(stamp, want)
    return True


def _set_up(ready: Callable[[], str]) -> bool:
    """A set-up step that says what it made ready, or fails the test command with its cause."""
    try:
        output.stage(f"==> test: {ready()}")
    except PipelineError as e:
        output.error(f"error: [test] {e.message}")
        return False
    return True


def better_auth() -> bool:
    """The real Better Auth server's packages for the MCP OAuth tests (npm ci from our lock, cached)."""
    from imagepipe.services import betterauth

    return _set_up(lambda: f"Better Auth's packages in {betterauth.ensure()}")


def go_toolchain() -> str | None:
    """A Go new enough for ci/cluster's, ci/interop's, ci/sigstore's and ci/admission's go.mod: this
    machine's, else fetched once from the Go module proxy."""
    from imagepipe.cluster import binaries

    try:
        go = binaries.go()
    except PipelineError as e:
        output.error(f"error: [test] {e.message}")
        return None
    output.say(f"Go: {go}")
    return go


def cluster_binaries() -> None:
    """The local cluster's Kubernetes binaries, built once per machine from ci/cluster's go.mod (the cluster
    tests skip, saying why, where they cannot be built: one of the two skips the suite allows)."""
    from imagepipe.cluster import binaries

    reason = binaries.unavailable()
    if reason:
        output.stage(f"==> test: {reason}: the cluster tests will be skipped")
        return
    found = binaries.ensure()
    output.stage(f"==> test: Kubernetes {binaries.version()} binaries in {found.dir}")


def interop_tools() -> bool:
    """oras, crane and the referrers-API registry of the registry interop tests, built once per machine from
    ci/interop's go.mod. Those tests never skip: a failure here fails the test command."""
    from imagepipe.services import interop

    return _set_up(lambda: f"oras and crane in {interop.ensure().dir}")


def sigstore_tools() -> bool:
    """cosign, built once per machine from ci/sigstore's go.mod: signatures and attestations in the tags
    admission controllers read. Like the interop tools, a failure here fails the test command."""
    from imagepipe.services import sigstore

    return _set_up(lambda: f"cosign {sigstore.version()} in {sigstore.ensure().dir}")


def admission_controller() -> bool:
    """sigstore's policy-controller webhook, built once per machine from ci/admission's go.mod, for the
    cluster's admission tests (its image is made from it when they start). Like cosign, a failure here
    fails the test command."""
    from imagepipe.cluster import admission

    return _set_up(lambda: f"policy-controller {admission.version()} in {admission.ensure().dir}")


def standin_bases(ctx: Context) -> bool:
    """python:3.11-slim for the host and for arm64 (the multi-arch tests' second platform), present or built
    offline once per machine (podman's store), so the suite's first runs do not pay for it unannounced."""
    from imagepipe.host import quirks
    from imagepipe.image.platforms import parse_list
    from imagepipe.pipeline.stages.baseimage import ensure_base

    quirks.ensure_mount_namespace(ctx.profile)
    ctx.state_dir.mkdir(parents=True, exist_ok=True)  # the stand-in is assembled there
    for platform in parse_list([MULTIARCH_PLATFORMS]):
        try:
            output.say(ensure_base(ctx.profile, state_dir=ctx.state_dir, platform=platform))
        except PipelineError as e:
            output.error(f"error: [base] {e.message}")
            return False
    return True


def wheelhouses(ctx: Context) -> bool:
    """The offline builds' wheelhouses for both platforms the suite builds (arm64's compiles psycopg-c under
    emulation, minutes), once per machine: shared by every state directory the suite makes."""
    from imagepipe.builders import wheels
    from imagepipe.image.platforms import parse_list

    for platform in parse_list([MULTIARCH_PLATFORMS]):
        try:
            house = wheels.wheelhouse(ROOT / "backend/requirements.txt", ctx.profile, platform)
            output.say(f"wheelhouse for {platform}: {house}")
        except PipelineError as e:
            output.error(f"error: [build] {e.message}")
            return False
    return True
