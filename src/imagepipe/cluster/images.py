"""Images the local cluster's pods use, put into its registry (the node pulls from nowhere else): the
sandbox image from the pause binary built with the components, the admission controller's from its webhook
binary (imagepipe.cluster.admission), a git image for the Job's clone step (our base with Debian's git, built
once per machine), and copies of local images (the kaniko executor, the base as the mirror of docker.io)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from imagepipe.builders.kaniko import seed_mirror
from imagepipe.cluster.facts import Facts
from imagepipe.exec import cmdline, runner
from imagepipe.host import podman, quirks
from imagepipe.image.containerfile import BASE_REF, base_ref
from imagepipe.image.platforms import MACHINES, Platform, host
from imagepipe.paths import HOST_CA_BUNDLE

GIT_IMAGE = "localhost/imagepipe-git:1"
GIT_CONTAINERFILE = f"""FROM {BASE_REF}
# git for the Job's clone step (runs as 65532 with a read-only root: HOME is the workspace)
RUN apt-get update -q && apt-get install -y -q --no-install-recommends git ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["git"]
"""


def _from_files(files: dict[str, tuple[Path, int]], containerfile: str, local: str, dest: str) -> None:
    """An image of `containerfile` over a context of these files (name -> (source, mode)), built as `local`
    and pushed to `dest`."""
    with tempfile.TemporaryDirectory(prefix="imagepipe-image-") as tmp:
        ctx = Path(tmp)
        for name, (source, mode) in files.items():
            (ctx / name).write_bytes(source.read_bytes())
            (ctx / name).chmod(mode)
        (ctx / "Containerfile").write_text(containerfile)
        _build_and_push(ctx, local, dest)


def push_pause(binary: Path, dest: str) -> None:
    _from_files({"pause": (binary, 0o755)}, 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n',
                "localhost/imagepipe-pause:1", dest)


# policy-controller's webhook: a static Go binary (CGO_ENABLED=0), so an empty base and the CA bundle it
# verifies registries' TLS with are all it needs; the numeric user of upstream's distroless image (no passwd)
WEBHOOK_UID = 65532
WEBHOOK_CONTAINERFILE = f"""FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY webhook /webhook
USER {WEBHOOK_UID}:{WEBHOOK_UID}
ENTRYPOINT ["/webhook"]
"""


def push_policy_controller(binary: Path, dest: str) -> str:
    """The admission controller's image, built from `binary` (no base to pull), pushed to `dest`."""
    _from_files({"webhook": (binary, 0o755), "ca-certificates.crt": (HOST_CA_BUNDLE, 0o644)},
                WEBHOOK_CONTAINERFILE, f"localhost/imagepipe-policy-controller:{dest.rsplit(':', 1)[1]}", dest)
    return dest


def git_image(dest: str) -> str:
    """The clone step's image in the cluster's registry (built here once, from the base)."""
    profile = quirks.detect()
    if not podman.image_exists(profile, GIT_IMAGE):
        with tempfile.TemporaryDirectory(prefix="imagepipe-git-") as tmp:
            (Path(tmp) / "Containerfile").write_text(GIT_CONTAINERFILE)
            runner.run(cmdline.buildah_bud(profile, containerfile=Path(tmp) / "Containerfile", context=Path(tmp),
                                            tags=[GIT_IMAGE]), stage="cluster", timeout=1200,
                       what="building the git image")
    mirror(GIT_IMAGE, dest)
    return dest


def mirror(local: str, dest: str) -> str:
    runner.run(cmdline.skopeo_copy_from_storage(local, dest), stage="cluster", timeout=900,
               what=f"copying {local} to {dest}")
    return dest


def _build_and_push(ctx: Path, local: str, dest: str) -> None:
    profile = quirks.detect()
    runner.run(cmdline.buildah_bud(profile, containerfile=ctx / "Containerfile", context=ctx, tags=[local]),
               stage="cluster", timeout=300, what=f"building {local}")
    mirror(local, dest)


@dataclass(frozen=True)
class Stocked:
    git_image: str  # the clone step's image, in the cluster's registry
    bare: Path  # the git server's repository (todo.git), empty


def executor_ref(facts: Facts, executor_tag: str) -> str:
    """Where the kaniko executor is kept in the cluster's registry: a copy under our own repository name,
    whatever image the pipeline was given (it names the executor only by reference)."""
    return f"{facts.registry}/imagepipe/kaniko-executor:{executor_tag}"


def stock_executor(facts: Facts, executor_local: str, *, executor_tag: str) -> str:
    """The local executor image copied into the cluster's registry (the node pulls from nowhere else)."""
    return mirror(executor_local, executor_ref(facts, executor_tag))


def stock(facts: Facts) -> Stocked:
    """What a Job on the local cluster needs there but the executor (stock_executor): the git image in its
    registry, the base as kaniko's docker.io mirror, and an empty repository on its git server."""
    git = git_image(f"{facts.registry}/imagepipe/git:1")
    # the base of every platform this machine has one for (the host's, and arm64's once built), as an index
    profile = quirks.detect()
    bases = [p for p in (host(), *(Platform("linux", a) for a in MACHINES)) if podman.image_exists(
        profile, base_ref(p))]
    seed_mirror(profile, facts.registry, list(dict.fromkeys(bases)), stage="cluster")
    bare = Path(facts.dir) / "git/todo.git"
    runner.run(["git", "init", "-q", "--bare", str(bare)], stage="cluster")
    return Stocked(git, bare)
