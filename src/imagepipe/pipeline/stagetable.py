"""The stage table: every stage and verb with its exit code, its description and the function that runs
it. It drives `all` (the stages in order, each handed the previous one's value), the single-stage verbs,
the CLI's choices and the exit codes of failed stages."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from imagepipe.errors import PipelineError, UsageError
from imagepipe.exec import exitcodes
from imagepipe.image.platforms import Platform
from imagepipe.image.refs import BuiltImage, PushedImage
from imagepipe.pipeline import multiarch, report
from imagepipe.pipeline.context import Context
from imagepipe.pipeline.stages import baseimage, build, lint, promote, provision, push, verify
from imagepipe.ui import output

T = TypeVar("T")


def _none(_ctx: Context) -> None:
    return None


def _not_alone(message: str) -> Callable[[Context], Any]:
    def refuse(_ctx: Context) -> Any:
        raise UsageError(message)
    return refuse


@dataclass(frozen=True)
class Stage:
    name: str
    exit_code: int  # when the stage fails
    description: str  # --help, and the progress line unless `describe` says more
    run: Callable[[Context, Any], Any]  # (ctx, the previous stage's value) -> this stage's value
    alone: Callable[[Context], Any] = _none  # the input when the stage runs on its own (or a UsageError)
    describe: Callable[[Context], str] | None = None
    applies: Callable[[Context], bool] = lambda _ctx: True  # skipped in `all` when False


STAGES: tuple[Stage, ...] = (
    Stage("provision", 10, "preparing the build host (pyinfra)", provision.run,
          applies=lambda ctx: not ctx.args.no_provision),
    # a cluster's Job pulls the base itself (through --registry-mirror): nothing local is built from it
    Stage("base", 11, "python:3.11-slim resolves locally: present, pulled, or the offline stand-in", baseimage.run,
          describe=lambda _ctx: "python:3.11-slim", applies=lambda ctx: not ctx.args.kube.context),
    Stage("lint", 12, "the Containerfile against the contract and hadolint", lint.run,
          describe=lambda ctx: lint.display_path(ctx.args.building.containerfile)),
    Stage("build", 13, "buildah bud (or kaniko with --builder kaniko)", build.run, describe=build.describe),
    Stage("push", 14, "the local image to the registry", push.run_any, alone=push.alone,
          describe=lambda ctx: f"to {ctx.args.registry}", applies=lambda ctx: ctx.args.building.builder == "buildah"),
    Stage("verify", 15, "run the image and prove the contract", verify.run, alone=verify.alone),
    Stage("promote", 16, "sign and tag the verified digest", promote.run,
          alone=_not_alone("promote runs only after a passing verify: run the whole pipeline"),
          describe=lambda _ctx: "tag the verified digest"),
)


@dataclass(frozen=True)
class Verb:
    name: str
    exit_code: int | None  # its own code for failures not tagged with a stage; None: the stage's
    description: str
    module: str  # imagepipe.cli.verbs.<module>.run(ctx) -> exit code; imported when used


VERBS: tuple[Verb, ...] = (
    Verb("registry", 17, "manage the embedded registry: start | stop | status", "registry"),
    Verb("parity", 18, "build with buildah and kaniko and compare configs, trees and layers", "parity"),
    Verb("bench", None, "measure ours against the naive baseline (and kaniko)", "bench"),
    Verb("load", None, "a bounded load test of an image", "load"),
    Verb("trust", None, "write (or --install) the signature policy for this repository", "trust"),
    Verb("attest", None, "attest verify REF@sha256:…: signatures, SBOM and provenance", "attest"),
    Verb("public-key", None, "print the cosign public key promote signs with (--cosign-key's, or the pipeline's); "
         "with an image glob, the admission policy for it", "publickey"),
    Verb("deployment", None, "print the Kubernetes Deployment for REF@sha256:… (probes from its HEALTHCHECK)",
         "deployment"),
    Verb("pipeline-image", None, "build, check and push the pipeline's own image (ci/pipeline.Containerfile)",
         "pipelineimage"),
    Verb("submit", None, "the whole job as ci/pipeline-job.yaml's Job in --kube-context, followed to its exit code",
         "submit"),
    Verb("cluster", 19, "the local single-node Kubernetes for the CI half: up | down | status", "cluster"),
    Verb("test", None, "provision the host and run the test suite", "test"),
)

BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
VERBS_BY_NAME: dict[str, Verb] = {v.name: v for v in VERBS}
API_ONLY = frozenset({"submit"})  # verbs that reach a cluster's API and run no container tool here
EXIT_CODES: dict[str, int] = {s.name: s.exit_code for s in STAGES} | {
    v.name: v.exit_code for v in VERBS if v.exit_code is not None}
CHOICES = ("all", *BY_NAME, *(v.name for v in VERBS))


def exit_code(error: PipelineError) -> int:
    """The exit code of an error: the code of the stage it stopped, or usage."""
    if isinstance(error, UsageError):
        return exitcodes.USAGE
    return EXIT_CODES.get(error.stage or "", exitcodes.USAGE)


CURRENT = output.CURRENT_STAGE  # the stage under way: the line a cancelled run prints, the JSON events


def timed(ctx: Context, name: str, what: str, fn: Callable[[], T], *, key: str | None = None) -> T:
    """One step of progress: its line, its timing in the report (under `key`, e.g. one platform's build),
    its stage's name on any error it raises."""
    CURRENT[0] = name
    output.stage(f"==> {name}: {what}")
    t0 = time.monotonic()
    try:
        result = fn()
    except PipelineError as e:
        e.stage = e.stage or name
        raise
    ctx.timings[key or name] = time.monotonic() - t0
    output.say(f"{key or name} done in {ctx.timings[key or name]:.1f} s")
    return result


def run_stage(ctx: Context, stage: Stage, value: Any = None) -> Any:
    what = stage.describe(ctx) if stage.describe else stage.description
    return timed(ctx, stage.name, what, lambda: stage.run(ctx, value))


@dataclass(frozen=True)
class Outcome:
    """What `all` ends with: the verified image, and what promote published (None: verify failed)."""
    verified: verify.Verified
    promoted: promote.Promoted | None
    platforms: tuple[tuple[Platform, verify.Verified], ...] = ()  # a multi-platform run's, one by one


def run_all(ctx: Context) -> Outcome:
    """The whole job, as it reads: prepare, build, push (kaniko pushes as it builds), verify, promote (only
    when every check passed), each step handed the typed value of the one before."""
    from imagepipe.checks import advisories

    # a stale advisory database, a malformed ignore list or a --cosign-key cosign cannot open stops the run
    # before anything is built
    advisories.preflight(ctx.args.verifying.vuln_db, max_age_days=ctx.args.verifying.vuln_db_max_age,
                         ignores=advisories.ignore_file(ctx.args.building.containerfile))
    promote.preflight(ctx)
    for name in ("provision", "base", "lint"):
        if BY_NAME[name].applies(ctx):
            run_stage(ctx, BY_NAME[name])
    if len(ctx.args.platforms) > 1:
        return run_platforms(ctx)
    pushed: PushedImage
    if ctx.args.building.builder == "buildah":
        built: BuiltImage = timed(ctx, "build", build.describe(ctx), lambda: build.buildah(ctx))
        pushed = run_stage(ctx, BY_NAME["push"], built)
    else:
        pushed = timed(ctx, "build", build.describe(ctx), lambda: build.with_kaniko(ctx))
    verified: verify.Verified = run_stage(ctx, BY_NAME["verify"], pushed)
    if not verified.result.passed:
        return Outcome(verified, None)
    if ctx.args.kube.context:  # Kubernetes ignores HEALTHCHECK: the digest proved with the probes derived from it
        from imagepipe.pipeline.stages import kubeproof

        proof = timed(ctx, "verify", f"{pushed.ref} as a Deployment in {ctx.args.kube.namespace}",
                      lambda: kubeproof.prove(ctx, pushed.ref), key="kubernetes")
        verified = dataclasses.replace(verified, kubernetes=proof)
    promoted: promote.Promoted = run_stage(ctx, BY_NAME["promote"], verified)
    return Outcome(verified, promoted)


def run_platforms(ctx: Context) -> Outcome:
    """Several platforms: each built and pushed, one index over them, each verified (another architecture
    under emulation), and the index promoted only when every platform passed."""
    images: list[tuple[Platform, PushedImage]] = []
    for p in ctx.args.platforms:
        how = f"{p}, emulated" if p.emulated else str(p)
        if ctx.args.building.builder == "buildah":
            built = timed(ctx, "build", f"buildah bud ({how})", partial(build.buildah, ctx, p),
                          key=f"build {p.slug}")
            pushed = timed(ctx, "push", f"{p} to {ctx.args.registry}", partial(push.run, ctx, built),
                           key=f"push {p.slug}")
        else:
            pushed = timed(ctx, "build", f"{build.describe(ctx)} ({how})", partial(build.with_kaniko, ctx, p),
                           key=f"build {p.slug}")
        images.append((p, pushed))
    index = timed(ctx, "push", "the index over " + ", ".join(str(p) for p, _ in images),
                  lambda: multiarch.assemble(ctx, images, multiarch.index_tag(images)), key="index")
    results: list[tuple[Platform, verify.Verified]] = []
    for p, image in images:
        how = f"{p}, emulated" if p.emulated else str(p)
        verified_p = timed(ctx, "verify", f"{image} ({how})", partial(verify.run, ctx, image, p),
                           key=f"verify {p.slug}")
        sizes = ", ".join(f"{d} {mb}" for d, mb in report.size_by_dir(verified_p.result).items())
        output.say(f"{p}: size by directory (MB): {sizes}")
        results.append((p, verified_p))
    result = multiarch.combined(index.index, [(p, v.result) for p, v in results])
    verified = verify.Verified(index.index, result)
    if not result.passed:
        return Outcome(verified, None, tuple(results))
    promoted = timed(ctx, "promote", "sign and tag the verified index", lambda: promote.run_index(ctx, index, results))
    return Outcome(verified, promoted, tuple(results))


def run_one(ctx: Context, name: str) -> Any:
    """One stage on its own: its input comes from the command line or this tree (Stage.alone)."""
    stage = BY_NAME[name]
    return run_stage(ctx, stage, stage.alone(ctx))


def verb(name: str) -> Verb:
    return VERBS_BY_NAME[name]


def help_text() -> str:
    """The stages and verbs with their exit codes, for --help."""
    lines = ["stages (in order; each exits with its code when it fails):"]
    lines += [f"  {s.name:<10} {s.exit_code:>3}  {s.description}" for s in STAGES]
    lines.append("verbs:")
    lines += [f"  {v.name:<10} {v.exit_code or '':>3}  {v.description}" for v in VERBS]
    lines.append(f"exit codes: {exitcodes.OK} green, {exitcodes.CHECKS_FAILED} a check failed, {exitcodes.USAGE} bad "
                 f"usage or input, {exitcodes.INTERNAL} internal error, 128+N cancelled by signal N")
    return "\n".join(lines)
