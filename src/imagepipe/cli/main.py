"""Command line: `python build/pipeline.py [STAGE] [options]`; without a stage, all of them in order."""

from __future__ import annotations

import fcntl
import importlib
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imagepipe.cli.arguments import parse_args
from imagepipe.errors import PipelineError, UsageError
from imagepipe.exec import cancel, exitcodes, runner
from imagepipe.host import quirks
from imagepipe.pipeline import cleanup, options, report, stagetable
from imagepipe.pipeline.context import Context
from imagepipe.pipeline.options import Options
from imagepipe.pipeline.stages.verify import Verified
from imagepipe.registry import embedded, ports
from imagepipe.ui import output


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
    state directory (imagepipe.registry.ports), so another checkout's servers are never used."""
    a = ctx.args
    if a.stage == "cluster":  # the local cluster has a registry of its own
        return a
    registry_addr = None
    if a.embedded:
        registry_addr = f"{embedded.LOOPBACK}:{ports.claim(ports.REGISTRY, ctx.state_dir, a.embedded_port)}"
    sigserver = None
    if a.signing.lookaside is None or a.stage == "registry":
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
        verb = importlib.import_module(f"imagepipe.cli.verbs.{stagetable.verb(name).module}")
        return int(verb.run(ctx))
    outcome = stagetable.run_all(ctx)
    verified, promoted = outcome.verified, outcome.promoted
    published = {**(promoted.published if promoted else {}),
                 **({"kubernetes": verified.kubernetes} if verified.kubernetes else {})}
    report.finish(ctx, verified.result, facts=verified.image.facts, published=published or None,
                  platforms=[report.platform_entry(str(p), v.result, v.image.facts) for p, v in outcome.platforms])
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
    # Progress goes to stdout; stderr carries only the error line and its detail (imagepipe.ui.output).
    output.configure(verbose=args.verbose, quiet=args.quiet, as_json=args.json)
    runner.VERBOSE = args.verbose
    cancel.install()
    try:
        opts = options.from_namespace(args)
        ctx = Context(args=opts, profile=quirks.detect(), state_dir=opts.state_dir.resolve())
        if ctx.profile.in_pod and opts.kube.insecure_registry:
            from imagepipe.registry import hostconfig

            hostconfig.declare_insecure(opts.kube.insecure_registry)
        if opts.stage == "test":  # before any lock: the suite runs pipelines of its own
            from imagepipe.cli.verbs import test

            return test.run(ctx)
        # The lock is taken first and released last: the run's cleanup (containers, databases, marker) runs
        # while no other run can start on this state directory.
        with state_lock(ctx.state_dir), cancel.running(cancel.Run(ctx.state_dir)) as run:
            ctx.run_id = run.id
            # a verb that only calls a cluster's API starts nothing here, and must run nothing here either
            # (no podman or buildah on a machine that has only cluster access): a killed run's containers
            # wait for the next run that has the tools
            local = opts.stage not in stagetable.API_ONLY
            if local:
                run.callback(lambda: cleanup.remove_run_containers(ctx.profile, run.id))
            run.callback(ctx.close_access)
            if local:
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
