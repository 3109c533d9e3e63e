"""`pipeline.py test`: prepare the host and the venv for the test suite, then run pytest.

One command on a fresh machine: provision (apt packages incl. PostgreSQL, buildah, podman, registry), install
the test extras and the backend's pinned requirements, run pytest. pytest's own exit code is returned, so
"no tests collected" (5) fails too.
"""

from __future__ import annotations

import sys
import tomllib

from imagepipe import output, runner, venvstamp
from imagepipe.context import Context
from imagepipe.paths import ROOT


def run(ctx: Context) -> int:
    """The verb, with every verb's shape; run without the state directory's lock (the suite runs pipelines
    of its own, each taking it)."""
    args = ctx.args
    if not args.no_provision:
        from imagepipe.stages.provision import provision

        output.stage("==> test: provisioning the host")
        result = provision(verbose=args.verbose)
        output.say(f"{'changed: ' + ', '.join(result.changed) if result.changed else 'no changes'}")
    cluster_binaries()
    interop_tools()
    with open(ROOT / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]["test"]
    requirements = ROOT / "backend/requirements.txt"
    stamp = ROOT / ".venv/.test-deps"
    want = venvstamp.wanted(("\n".join(extras) + requirements.read_text()).encode())
    if not venvstamp.is_current(stamp, want):
        output.stage("==> test: installing test dependencies and backend/requirements.txt")
        # two installs: the backend's requirements are hashed (--require-hashes covers a whole command)
        if runner.passthrough([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                               "--require-hashes", "-r", str(requirements)]) or \
                runner.passthrough([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                    *extras]):
            output.error("error: installing the test dependencies failed (see pip's output above)")
            return 3
        venvstamp.mark(stamp, want)
    output.stage("==> test: pytest " + " ".join(args.target))
    code = runner.passthrough([sys.executable, "-m", "pytest", *args.target], cwd=ROOT)
    if code == 5:
        output.error("error: pytest collected no tests")
    return code


def cluster_binaries() -> None:
    """The local cluster's Kubernetes binaries, built once per machine from ci/cluster's go.mod (the cluster
    tests skip, saying why, where Go is missing)."""
    from imagepipe.cluster import binaries

    reason = binaries.unavailable()
    if reason:
        output.stage(f"==> test: {reason}: the cluster tests will be skipped")
        return
    found = binaries.ensure()
    output.stage(f"==> test: Kubernetes {binaries.version()} binaries in {found.dir}")


def interop_tools() -> None:
    """oras, crane and the referrers-API registry of the registry interop tests, built once per machine from
    ci/interop's go.mod (those tests skip, saying why, where Go is missing)."""
    from imagepipe import interop

    reason = interop.unavailable()
    if reason:
        output.stage(f"==> test: {reason}: the registry interop tests will be skipped")
        return
    output.stage(f"==> test: oras and crane in {interop.ensure().dir}")
