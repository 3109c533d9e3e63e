"""`pipeline.py deployment REGISTRY/REPO@sha256:…`: the Kubernetes Deployment and Service for a verified
digest, as YAML on stdout (imagepipe.pipeline.deployment: probes derived from its HEALTHCHECK, its numeric user, a
read-only root, no capabilities). The cluster path proves exactly this manifest before it promotes."""

from __future__ import annotations

import sys

import yaml

from imagepipe.errors import UsageError
from imagepipe.exec import exitcodes
from imagepipe.image.refs import ImageRef
from imagepipe.pipeline.context import Context
from imagepipe.pipeline.deployment import manifest
from imagepipe.pipeline.stages.kubeproof import image_facts


def run(ctx: Context) -> int:
    if len(ctx.args.target) != 1:
        raise UsageError("deployment takes one image: python build/pipeline.py deployment REGISTRY/REPO@sha256:…")
    image = ImageRef.parse(ctx.args.target[0])
    if image.digest is None:
        raise UsageError(f"{image}: give the verified digest (REGISTRY/REPO@sha256:…), not a tag")
    config, (uid, gid) = image_facts(ctx.access(image.registry, stage="verify"), image)
    # stdout is the manifest alone, so that `… deployment REF | kubectl apply -f -` works
    sys.stdout.write(yaml.safe_dump(manifest(str(image), config, uid=uid, gid=gid), sort_keys=False))
    return exitcodes.OK
