"""Command line: `python build/pipeline.py [STAGE] [options]`; without a stage, all of them in order."""

from __future__ import annotations

import argparse
import fcntl
import importlib
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imagepipe import cancel, cleanup, exitcodes, hostenv, options, output, report, runner, stagetable
from imagepipe.context import Context
from imagepipe.errors import PipelineError, UsageError
from imagepipe.options import Options
from imagepipe.paths import ROOT
from imagepipe.services import ports, registry
from imagepipe.stages.verify import Verified


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python build/pipeline.py",
        description="Build the backend image with buildah, push it, verify it with podman, promote it.",
        epilog=stagetable.help_text(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("stage", nargs="?", default="all", choices=stagetable.CHOICES, metavar="STAGE",
                   help="a stage or verb below (default: all, the stages in order)")
    p.add_argument("target", nargs="*", help="verify: the image to verify; registry: start|stop|status; "
                                             "test: arguments passed to pytest")
    p.add_argument("--registry", default=options.EMBEDDED,
                   help="registry HOST[:PORT] to push to, used as given; `embedded` (the default) starts this "
                        "checkout's own docker-registry on 127.0.0.1:--embedded-port")
    p.add_argument("--embedded-port", type=int,
                   help="port of the embedded registry on loopback (default: the one this checkout used before, "
                        "else 5000, else the next free one)")
    p.add_argument("--builder", choices=("buildah", "kaniko"), default="buildah",
                   help="buildah (local image, then push) or kaniko (the executor image in podman, or the "
                        "Job of ci/kaniko.yaml with --kube-context); default: %(default)s")
    p.add_argument("--kaniko-image", help="the kaniko executor image (default: the one pinned in ci/kaniko.yaml)")
    p.add_argument("--kube-context", help="build with kaniko as the Job of ci/kaniko.yaml in this cluster "
                                          "context (kubeconfig), then verify and promote here")
    p.add_argument("--kube-namespace", default="default", help="namespace of the Job (default: %(default)s)")
    p.add_argument("--git-url", help="--kube-context: the repository the Job fetches this commit from (default: "
                                     "origin's URL)")
    p.add_argument("--git-image", help="--kube-context: the image of the Job's clone step (default: the manifest's)")
    p.add_argument("--registry-mirror", help="--kube-context: kaniko pulls docker.io images from this registry "
                                             "mirror, and never from docker.io")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
                   help="--kube-context: a plain-HTTP registry kaniko may push to and pull from (repeatable)")
    p.add_argument("--kube-secret", help="--kube-context: an existing kubernetes.io/dockerconfigjson Secret for "
                                         "the Job (default: one made for the run from --creds/--authfile, then "
                                         "deleted)")
    p.add_argument("--build-ca", type=Path, help="--kube-context: a CA bundle the build's pip must trust, given "
                                                 "to the Job as a Secret mounted at /run/host-ca.crt")
    p.add_argument("--job-deadline", type=int, help="--kube-context: the Job's activeDeadlineSeconds (default: "
                                                    "the manifest's)")
    p.add_argument("--signing-key", help="GPG fingerprint in your keyring to sign with (default: the pipeline's "
                                         "own key, generated once into the state directory)")
    p.add_argument("--lookaside", help="URL where consumers read signatures (default: the signature server on "
                                       "127.0.0.1:--sigserver-port, serving <state>/sigstore/lookaside)")
    p.add_argument("--sigserver-port", type=int,
                   help="port of the signature server on loopback (default: the one this checkout used before, "
                        "else 5080, else the next free one)")
    p.add_argument("--public-key", type=Path, help="attest verify / trust: the signer's public key (default: the "
                                                   "pipeline key's, <state>/signing/pipeline-key.pub)")
    p.add_argument("--install", action="store_true", help="trust: install the policy system-wide")
    p.add_argument("--repo", default="todo-backend", help="repository name in the registry (default: %(default)s)")
    p.add_argument("--tag", action="append", default=[], help="extra tag to promote besides latest (repeatable)")
    p.add_argument("--creds", help="USER:PASSWORD for the registry, or USER with the password in "
                                   "IMAGEPIPE_REGISTRY_PASSWORD (default: the auth files podman login and docker "
                                   "login write)")
    p.add_argument("--authfile", type=Path, help="registry auth file (default: $REGISTRY_AUTH_FILE, then "
                                                 "podman's and docker's)")
    p.add_argument("--tls-verify", choices=("true", "false"), default="true",
                   help="false: do not verify the registry's TLS certificate (insecure; logged on every run)")
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
    p.add_argument("--json", action="store_true", help="output as JSON events, one per line (level, stage, "
                                                       "message); bench's figures and load's result as one event")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    p.add_argument("--bench-runs", type=int, default=3, help="bench: alternating rounds of the service figures "
                                                               "(the median is reported)")
    p.add_argument("--kaniko-trials", action="store_true", help="bench: also time kaniko's cached rebuild under "
                                                                "each fork option that touches caching")
    p.add_argument("-v", "--verbose", action="store_true", help="stream the tools' output; tracebacks on errors")
    return p.parse_args(argv)


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
            output.error(f"waiting for another pipeline run to finish (lock {state_dir / 'pipeline.lock'})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()


def claim_ports(ctx: Context) -> Options:
    """This checkout's own servers: the embedded registry's and the signature server's ports, claimed for the
    state directory (imagepipe.services.ports), so another checkout's servers are never used."""
    a = ctx.args
    if a.stage == "cluster":  # the local cluster has a registry of its own
        return a
    registry_addr = None
    if a.embedded:
        registry_addr = f"{registry.LOOPBACK}:{ports.claim(ports.REGISTRY, ctx.state_dir, a.embedded_port)}"
    sigserver = None
    if a.lookaside is None or a.stage == "registry":
        sigserver = ports.claim(ports.SIGSERVER, ctx.state_dir, a.sigserver_port)
    return a.resolved(registry=registry_addr, sigserver_port=sigserver)


def dispatch(ctx: Context) -> int:
    """`all`, one stage, or a verb: the stage table decides."""
    name = ctx.args.stage
    if name in stagetable.BY_NAME:
        value = stagetable.run_one(ctx, name)
        if isinstance(value, Verified):
            report.finish(ctx, value.result)
            return exitcodes.OK if value.result.passed else exitcodes.CHECKS_FAILED
        return exitcodes.OK
    if name != "all":
        verb = importlib.import_module(f"imagepipe.verbs.{stagetable.verb(name).module}")
        return int(verb.run(ctx))
    outcome = stagetable.run_all(ctx)
    verified, promoted = outcome.verified, outcome.promoted
    report.finish(ctx, verified.result, facts=verified.image.facts,
                  published=promoted.published if promoted else None)
    if not verified.result.passed:
        output.block(f"verification failed: latest was not moved ({ctx.repository.with_tag('latest')} is unchanged)")
        return exitcodes.CHECKS_FAILED
    return exitcodes.OK


def scrub_password(argv: list[str]) -> list[str]:
    """argv with the password of --creds USER:PASS replaced by ***."""
    out, after_creds = [], False
    for arg in argv:
        if after_creds and ":" in arg:
            arg = arg.split(":", 1)[0] + ":***"
        elif arg.startswith("--creds=") and ":" in arg:
            arg = arg.split(":", 1)[0] + ":***"
        out.append(arg)
        after_creds = arg == "--creds"
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)  # argparse's view, until checked below
    if args.creds and ":" in args.creds and argv is None:
        # /proc/PID/cmdline is readable by every user: our own command line loses the password at once
        # (setproctitle rewrites the memory it is read from). `podman login` or IMAGEPIPE_REGISTRY_PASSWORD
        # keep it out of argv altogether.
        import setproctitle

        setproctitle.setproctitle(" ".join(scrub_password([sys.executable, *sys.orig_argv[1:]])))
    # Progress goes to stdout; stderr carries only the error line and its detail (imagepipe.output).
    output.configure(verbose=args.verbose, quiet=args.quiet, as_json=args.json)
    runner.VERBOSE = args.verbose
    cancel.install()
    try:
        opts = options.from_namespace(args)
        ctx = Context(args=opts, profile=hostenv.detect(), state_dir=opts.state_dir.resolve())
        if opts.stage == "test":  # before any lock: the suite runs pipelines of its own
            from imagepipe.verbs import test

            return test.run(ctx)
        # The lock is taken first and released last: the run's cleanup (containers, databases, marker) runs
        # while no other run can start on this state directory.
        with state_lock(ctx.state_dir), cancel.running(cancel.Run(ctx.state_dir)) as run:
            ctx.run_id = run.id
            run.callback(lambda: cleanup.remove_run_containers(ctx.profile, run.id))
            run.callback(ctx.close_access)
            cleanup.clean_leftovers(ctx.profile, ctx.state_dir, run)
            ctx.args = claim_ports(ctx)  # the one time the run's options gain what it claimed
            return dispatch(ctx)
    except cancel.Interrupted as e:
        cancel.acknowledge()
        output.error(f"interrupted by {e.name} during the {stagetable.CURRENT[0]} stage: its tools were stopped "
                     "and what it started was removed; no tag was moved")
        cancel.exit_now(e.exit_code)
        return e.exit_code  # not reached
    except PipelineError as e:
        where = f"[{e.stage}] " if e.stage else ""
        output.error(f"error: {where}{e.message}")
        if e.detail:
            output.error("    " + "\n    ".join(e.detail.splitlines()[-runner.TAIL_LINES:]))
        if args.verbose:
            traceback.print_exc()
        return stagetable.exit_code(e)
    except Exception as e:  # the outer edge: one line, the traceback only on request
        output.error(f"internal error: {type(e).__name__}: {e} (re-run with --verbose for the traceback)")
        if args.verbose:
            traceback.print_exc()
        return exitcodes.INTERNAL
