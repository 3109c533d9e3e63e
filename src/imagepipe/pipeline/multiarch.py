"""Several platforms from one command (`--platform linux/amd64,linux/arm64`). Each platform is built from the
same Containerfile (another architecture under qemu user emulation), pushed under its own tag
(`<tag>-linux-arm64`) and verified on its own; one index, a Docker manifest list (the images are docker
format, for HEALTHCHECK), names them all under the plain tag. Promote moves `latest` to the index only when
every platform passed (stagetable.run_all)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from imagepipe.checks.types import Check, VerifyResult
from imagepipe.errors import PipelineError
from imagepipe.image.platforms import Platform
from imagepipe.image.refs import PushedImage
from imagepipe.pipeline.context import Context
from imagepipe.registry import oci
from imagepipe.ui import output

LIST_TYPE = oci.DOCKER_LIST  # the images are docker format (HEALTHCHECK), so is their index


@dataclass(frozen=True)
class Entry:
    """One platform's image in an index."""

    platform: Platform
    media_type: str
    size: int
    digest: str


@dataclass(frozen=True)
class PushedIndex:
    index: PushedImage  # the manifest list, by digest, with the tag it was pushed under
    images: tuple[tuple[Platform, PushedImage], ...]


def index_document(entries: list[Entry]) -> bytes:
    """The manifest list's bytes: entries in the order given (the --platform order), nothing else (no
    annotation, no time), so one set of images always gives one index digest."""
    doc = {"schemaVersion": 2, "mediaType": LIST_TYPE, "manifests": [
        {"mediaType": e.media_type, "size": e.size, "digest": e.digest,
         "platform": {"architecture": e.platform.arch, "os": e.platform.os}} for e in entries]}
    return json.dumps(doc, indent=3).encode()


def platforms_of(document: bytes) -> list[tuple[str, str]]:
    """(os/arch, digest) of each entry of an index (attest verify and the tests read it back)."""
    doc = json.loads(document)
    return [(f"{m['platform']['os']}/{m['platform']['architecture']}", m["digest"]) for m in doc.get("manifests", [])]


def put_index(reg: oci.Registry, tag: str, images: list[tuple[Platform, str]], *, stage: str) -> str:
    """The index of images already in `reg`'s repository ((platform, reference) each), put under `tag`; its
    digest. Each entry's platform is checked against the image's own config first: an index that claims
    arm64 for an amd64 image would run the wrong code on every node."""
    entries = []
    for platform, ref in images:
        fetched = reg.get_manifest(ref)
        if fetched is None:
            raise PipelineError(f"{reg.repo}:{ref} is not in the registry: the index cannot name it", stage=stage)
        body, media_type = fetched
        config = json.loads(reg.get_blob(json.loads(body)["config"]["digest"]))
        found = f"{config.get('os')}/{config.get('architecture')}"
        if found != str(platform):
            raise PipelineError(f"the image built for {platform} is {found} ({reg.repo}@{ref}): the builder "
                                "ignored the platform; nothing was indexed", stage=stage)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        entries.append(Entry(platform, media_type.split(";")[0], len(body), digest))
    document = index_document(entries)
    reg.put_manifest(tag, document, LIST_TYPE)
    return "sha256:" + hashlib.sha256(document).hexdigest()


def assemble(ctx: Context, images: list[tuple[Platform, PushedImage]], tag: str) -> PushedIndex:
    """The index of this run's pushed images, under `tag`."""
    reg = oci.Registry(ctx.access(stage="push"), ctx.args.repo, stage="push")
    digest = put_index(reg, tag, [(p, image.digest) for p, image in images], stage="push")
    pushed = PushedImage(ctx.repository.with_digest(digest), tag)
    output.say(f"index {ctx.repository.with_tag(tag)} -> {digest} "
               f"({', '.join(str(p) for p, _ in images)})")
    return PushedIndex(pushed, tuple(images))


def index_tag(images: list[tuple[Platform, PushedImage]]) -> str:
    """The tag the platforms' images share, without their `-linux-ARCH` (kaniko's keep `-kaniko`)."""
    platform, first = images[0]
    return (first.tag or "latest").removesuffix(f"-{platform.slug}")


def combined(index: PushedImage, results: list[tuple[Platform, VerifyResult]]) -> VerifyResult:
    """One result for the report and the table: every platform's checks, named `id@linux-arm64`."""
    out = VerifyResult(image=str(index), seconds=sum(r.seconds for _, r in results))
    for platform, result in results:
        tag = f"@{platform.slug}" + (" (emulated)" if result.emulated else "")
        out.checks += [dataclasses.replace(c, id=f"{c.id}{tag}") for c in result.checks]
        out.phases += [(f"{platform.slug}: {what}", at) for what, at in result.phases]
    if not out.checks:
        out.checks.append(Check("platforms", False, detail="no platform was verified"))
    return out
