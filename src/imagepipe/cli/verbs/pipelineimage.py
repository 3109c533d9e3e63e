"""`pipeline.py pipeline-image`: the pipeline's own image (ci/pipeline.Containerfile), for CI systems whose
jobs are pods. Built with buildah from a small context (the lock, the pod's containers.conf, and cosign as
this machine built it from ci/sigstore), tagged by what it is made from, checked by running what its
in-cluster steps run, and pushed to the registry with the run's one registry access, like the backend."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from imagepipe.exec import cmdline, exitcodes, runner
from imagepipe.host import quirks
from imagepipe.paths import ROOT
from imagepipe.pipeline.context import Context
from imagepipe.pipeline.stages.build import build_ca_bundle
from imagepipe.pipeline.stages.push import ensure_registry
from imagepipe.services import sigstore
from imagepipe.ui import output

CONTAINERFILE = ROOT / "ci/pipeline.Containerfile"
# Copied into the context and hashed into the tag. cosign itself is copied in as built here (the image build
# pulls nothing, so no Go image could build it there): the go.mod/go.sum it is built from stand for it.
INPUTS = {"build/requirements.lock": ROOT / "build/requirements.lock",
          "ci/pipeline-containers.conf": ROOT / "ci/pipeline-containers.conf",
          "ci/sigstore/go.mod": ROOT / "ci/sigstore/go.mod", "ci/sigstore/go.sum": ROOT / "ci/sigstore/go.sum"}
COSIGN = "bin/cosign"  # in the context
REPOSITORY = "imagepipe/pipeline"
# What the image must run where it is used: each line one tool, its output checked for a version.
PROBE = ("podman --version && buildah --version && crun --version | head -1 && skopeo --version "
         "&& git --version && gpg --version | head -1 && ls /usr/lib/postgresql/*/bin/initdb "
         "&& cosign version 2>&1 | grep GitVersion "
         "&& python3 -c 'import kubernetes, sh, pyinfra, requests, mcp; print(\"python deps ok\")'")


def tag() -> str:
    """The image's tag: a hash of everything it is made from, so one tag is one image."""
    digest = hashlib.sha256(CONTAINERFILE.read_bytes())
    for name, path in sorted(INPUTS.items()):
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def run(ctx: Context) -> int:
    quirks.ensure_mount_namespace(ctx.profile)
    version = tag()
    local = f"localhost/{REPOSITORY}:{version}"
    with tempfile.TemporaryDirectory(prefix="imagepipe-pipeline-image-") as tmp:
        context = Path(tmp)
        for name, path in INPUTS.items():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, context / name)
        (context / COSIGN).parent.mkdir()
        shutil.copy2(sigstore.cosign(), context / COSIGN)  # built first where this machine has none
        output.stage(f"==> pipeline-image: building {local} from {CONTAINERFILE.relative_to(ROOT)}")
        # python:3.11-slim resolves as for the backend (the base stage); never pulled here
        ca = build_ca_bundle(ctx.args.kube.build_ca)
        runner.run(cmdline.buildah_bud(ctx.profile, containerfile=CONTAINERFILE, context=context, tags=[local],
                                        ca_bundle=ca, pull="never"),
                   stage="build", timeout=1800, what="buildah bud (the pipeline image)")
    probed = runner.run(cmdline.podman_run(ctx.profile, local, remove=True, entrypoint="sh",
                                            command=["-c", PROBE]), stage="verify", timeout=300,
                        what="the pipeline image's tools")
    for line in probed.stdout.strip().splitlines():
        output.say(line)
    access = ensure_registry(ctx)
    dest = f"{ctx.args.registry}/{REPOSITORY}:{version}"
    digestfile = ctx.state_dir / "pipeline-image.digest"
    runner.run(cmdline.buildah_push(local, dest, digestfile=digestfile, auth=access.tool), stage="push",
               timeout=1800, what="buildah push (the pipeline image)")
    ref = f"{ctx.args.registry}/{REPOSITORY}@{digestfile.read_text().strip()}"
    output.say(f"pipeline image: {ref}")
    print(ref, flush=True)
    return exitcodes.OK
