"""Stage `promote`: only after verify passed. Every tag it writes points at the verified digest and is
signed; the SBOM and provenance are attached to the digest and signed. A cancel puts moved tags back."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from imagepipe.checks.types import VerifyResult
from imagepipe.errors import PipelineError
from imagepipe.exec import cmdline, runner, tooloutput
from imagepipe.host import git, podman
from imagepipe.image import mount
from imagepipe.image.containerfile import BASE_REF, base_ref
from imagepipe.image.platforms import Platform
from imagepipe.image.refs import BuildFacts, PushedImage
from imagepipe.paths import ROOT
from imagepipe.pipeline.context import Context
from imagepipe.pipeline.multiarch import PushedIndex
from imagepipe.pipeline.stages.verify import Verified
from imagepipe.registry import oci
from imagepipe.registry.access import Access
from imagepipe.services import sigserver
from imagepipe.supplychain import attest, cosigning, inventory, provenance, sbom, signing, verification
from imagepipe.ui import output

log = logging.getLogger("imagepipe")


def _version() -> str:
    try:
        return version("todo-image-pipeline")
    except PackageNotFoundError:  # run from a tree that was never installed
        return "unknown"



def preflight(ctx: Context) -> None:
    """Before anything is built: --cosign-key opened through cosign (its public half read), so a key cosign
    cannot open (not a key, a wrong COSIGN_PASSWORD, an unreachable URI) is one line now rather than a
    failed promote after the build and verify; promote signs with what it found here."""
    spec = ctx.args.signing.cosign_key
    if spec:
        ctx.cosign_key = cosigning.user_key(spec, ctx.state_dir)


def cosign_key_of(ctx: Context) -> cosigning.CosignKey:
    """The key promote signs and attests with: --cosign-key's as the preflight opened it, else opened now
    (a promote reached without the preflight), else the pipeline's own (generated once)."""
    if ctx.cosign_key is None:
        ctx.cosign_key = cosigning.key_for(ctx.args.signing.cosign_key, ctx.state_dir)
    return ctx.cosign_key


def signing_setup(ctx: Context) -> tuple[signing.SigningKey, Path, str, Path]:
    """(key, lookaside staging directory, lookaside URL consumers read, registries.d for skopeo)."""
    a = ctx.args
    if not a.signing.key:
        key = signing.pipeline_key(ctx.state_dir)
    elif Path(a.signing.key).is_file():
        key = signing.key_file(Path(a.signing.key), ctx.state_dir)
    else:
        key = signing.user_key(a.signing.key, ctx.state_dir)
    server = sigserver.on_port(ctx.state_dir, a.sigserver_port)
    store = a.signing.lookaside_dir or server.store
    if a.signing.lookaside:
        store.mkdir(parents=True, exist_ok=True)
    else:
        server.ensure_running()
    lookaside = sigserver.lookaside_url(a.signing.lookaside, server)
    scope = ctx.repository.name
    regd = signing.registries_d(ctx.state_dir / "sigstore" / "registries.d", scope=scope, staging=store,
                                lookaside=lookaside)
    return key, store, lookaside, regd


@dataclass(frozen=True)
class Promoted:
    tags: list[str]  # every tag now naming the verified digest, signed
    published: dict[str, object]  # signature, SBOM and provenance, for the report


Instance = tuple[Platform | None, PushedImage, VerifyResult]  # platform None: a single-platform run


def run(ctx: Context, verified: Verified) -> Promoted:
    """The stage: every tag moved to the verified digest and signed; SBOM and provenance attached."""
    if not verified.result.passed:  # never reached from main(); a guard against future callers
        raise PipelineError("refusing to promote an image that failed verification", stage="promote")
    image = verified.image
    key, staging, lookaside, regd = signing_setup(ctx)
    with signing.agent_stopped(key.gnupghome):
        return _promote(ctx, image, [(None, image, verified.result)], key, staging, lookaside, regd)


def run_index(ctx: Context, index: PushedIndex, verified: list[tuple[Platform, Verified]]) -> Promoted:
    """A multi-platform run: each platform's image attested and signed, then every tag moved to the index and
    signed; only when every platform passed."""
    if not all(v.result.passed for _, v in verified):
        raise PipelineError("refusing to promote an index with a platform that failed verification", stage="promote")
    key, staging, lookaside, regd = signing_setup(ctx)
    with signing.agent_stopped(key.gnupghome):
        return _promote(ctx, index.index, [(p, v.image, v.result) for p, v in verified], key, staging,
                        lookaside, regd)


def _promote(ctx: Context, image: PushedImage, instances: list[Instance], key: signing.SigningKey,
             staging: Path, lookaside: str, regd: Path) -> Promoted:
    digest = image.digest
    published = attest.Published(signer=key.fingerprint, lookaside=lookaside)
    is_index = instances[0][0] is not None
    # The attestations and cosign's signatures first: they move no tag, so a failure there leaves every tag
    # where it was.
    access = ctx.access(image.ref.registry, stage="promote")
    cosign_key = cosign_key_of(ctx)
    cosign_reg = cosigning.registry(access)
    platforms: dict[str, object] = {}
    cosigned: dict[str, float] = {}  # digest -> seconds cosign took to sign (and attest) it
    for platform, instance, result in instances:
        own = attest.Published(signer=key.fingerprint, lookaside=lookaside) if is_index else published
        documents = attach(ctx, instance, result.inventory, key, staging, own, platform)
        cosigned[instance.digest] = cosign_attach(ctx, instance, result, documents, cosign_key, cosign_reg)
        if platform is not None:
            platforms[str(platform)] = {"image": str(instance), "emulated": platform.emulated, "sbom": own.sbom,
                                        "provenance": own.provenance}
    if is_index:  # the index first in the report, as before its platforms
        cosigned = {image.digest: cosigning.sign_and_attest(cosign_key, str(image), (), cosign_reg,
                                                            cosign_work(ctx)), **cosigned}
    moved: list[tuple[str, str | None]] = []  # (tag ref, the digest it named before; None: it did not exist)
    try:
        for tag in ["latest", *ctx.args.signing.tag]:
            dest = str(image.ref.with_tag(tag))
            moved.append((dest, tag_digest(dest, access)))
            # an index: skopeo signs it and each platform's manifest, all for this tag (containers/image checks,
            # when it pulls one platform of an index by tag, that platform's signatures too)
            signing.sign_tag(str(image), dest, key=key, registries=regd, auth=access.tool, all_images=is_index)
            got = tag_digest(dest, access)
            if got != digest:
                raise PipelineError(f"{dest} points at {got} after promotion, expected {digest}", stage="promote")
            published.signed_tags.append(dest)
            output.say(f"{dest} -> {digest} (signed by {key.fingerprint[-16:]})")
    except BaseException:
        # A promotion cut short (cancelled or failed) moves no tag: each one already moved goes back.
        for problem in rollback(image, moved, access):
            log.warning("%s", problem)
        raise
    signed = staging / f"{ctx.args.repo}@{digest.replace(':', '=')}"
    published.signatures = {f.name: "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()
                            for f in sorted(signed.glob("signature-*"))}
    published.digest = digest
    report = published.report()
    report["cosign"] = cosign_report(cosign_key, cosigned)
    if platforms:
        report["platforms"] = platforms
    return Promoted([dest for dest, _ in moved], report)


def rollback(image: PushedImage, moved: list[tuple[str, str | None]], access: Access) -> list[str]:
    """Put each moved tag back on the digest it named; remove a tag this promotion created. Returns one line
    per tag that could not be restored."""
    problems = []
    reg = oci.Registry(access, image.ref.repository)
    for dest, before in reversed(moved):
        now = tag_digest(dest, access)
        if now == before:
            continue
        tag = dest.rsplit(":", 1)[1]
        if before is None:
            if not reg.delete_tag(tag):
                problems.append(f"could not remove {dest}, which this promotion created: the registry refuses to "
                                f"delete tags (distribution 2.8 does); it names {now}, a verified image")
            continue
        back = runner.run(cmdline.skopeo_copy(str(image.ref.with_digest(before)), dest, auth=access.tool,
                                               all_images=True),
                          timeout=120, ok_codes=(0, 1, 2))
        if back.code != 0 or tag_digest(dest, access) != before:
            problems.append(f"could not restore {dest} to {before}: it names {tag_digest(dest, access)} "
                            f"({runner.first_error_line(back.stderr) or 'skopeo copy failed'})")
    return problems


def cosign_report(key: cosigning.CosignKey, cosigned: dict[str, float]) -> dict[str, object]:
    """The report's `cosign` entry: the key, each digest signed (an index's first) and the seconds cosign took
    for it, signature and attestations together (`seconds`, per digest)."""
    return {"public_key": str(key.public), "key": key.ref if not key.own else
            "the pipeline's own (<state>/cosign/cosign.key)", "signed": list(cosigned),
            "seconds": {digest: round(s, 2) for digest, s in cosigned.items()},
            "attestations": list(cosigning.PREDICATE_TYPES), "tlog": False}


def cosign_work(ctx: Context) -> Path:
    return ctx.state_dir / "cosign" / "work" / ctx.run_id


def cosign_predicates(documents: tuple[str, str], result: VerifyResult, *, digest: str,
                      where: str) -> list[tuple[str, dict[str, Any]]]:
    """What cosign attests about `digest`, by predicate type: the SBOM, the SLSA provenance (the in-toto
    statement's predicate) and what verify proved (supplychain.verification; `where`: "host" or "pod")."""
    bom, statement = documents
    return [(cosigning.SBOM_TYPE, json.loads(bom)),
            (cosigning.PROVENANCE_TYPE, json.loads(statement)["predicate"]),
            (cosigning.VERIFICATION_TYPE, verification.predicate(result, digest=digest, where=where,
                                                                  verifier_version=_version()))]


def cosign_attach(ctx: Context, image: PushedImage, result: VerifyResult, documents: tuple[str, str],
                  key: cosigning.CosignKey, reg: cmdline.CosignRegistry) -> float:
    """The verified digest signed with cosign, and its three in-toto attestations, signed with the same key:
    the SBOM, the SLSA provenance and what verify proved. Returns the seconds cosign took."""
    predicates = cosign_predicates(documents, result, digest=image.digest,
                                   where="pod" if ctx.profile.in_pod else "host")
    seconds = cosigning.sign_and_attest(key, str(image), predicates, reg, cosign_work(ctx))
    output.say(f"cosign: {image.digest} signed and attested (SBOM, SLSA provenance, verification) by "
               f"{key.public} in {seconds:.1f} s")
    return seconds


def attach(ctx: Context, image: PushedImage, contents: inventory.Inventory | None, key: signing.SigningKey,
           staging: Path, published: attest.Published, platform: Platform | None = None) -> tuple[str, str]:
    """SBOM and provenance as signed OCI artifacts whose subject is the digest; in a multi-platform run each
    platform's image gets its own, naming the platform. Returns both documents (the SBOM, the in-toto
    statement), for cosign's attestations."""
    a = ctx.args
    repo_ref, digest = image.ref.name, image.digest
    facts = image.facts or BuildFacts(a.building.builder)
    if contents is None:  # verify's static pass read it; mounted again only when that pass failed
        with mount.mounted(str(image)) as root:
            contents = inventory.read(root)
    debs, dists = list(contents.debs), list(contents.dists)
    base_digest = base_image_digest(ctx, platform)
    named = str(platform) if platform is not None else None
    bom = sbom.build(image=repo_ref, digest=digest, base_ref=BASE_REF, base_digest=base_digest,
                     debs=debs, dists=dists, platform=named)
    source, commit = git.provenance_source()
    requirements = {str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p):
                    hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in (a.building.context / "requirements.txt", a.building.context / "requirements.in")
                    if p.is_file()}
    described = provenance.BuildFacts(
        image=repo_ref, digest=digest, containerfile=str(a.building.containerfile), context=str(a.building.context),
        source_uri=source, commit=commit, builder=facts.builder, builder_version=facts.builder_version,
        base_ref=BASE_REF, base_digest=base_digest, requirements=requirements, invocation=ctx.run_id,
        started=facts.started, finished=facts.finished, platform=named,
        emulated=platform.emulated if platform is not None else False)
    reg = oci.Registry(ctx.access(image.ref.registry, stage="promote"), image.ref.repository)
    published.sbom = attest.publish_attestation(reg, repo_ref=repo_ref, digest=digest, artifact_type=sbom.MEDIA_TYPE,
                                                payload=bom.encode(), key=key, staging=staging, repo=a.repo)
    statement = provenance.statement(described)
    published.provenance = attest.publish_attestation(
        reg, repo_ref=repo_ref, digest=digest, artifact_type=provenance.MEDIA_TYPE,
        payload=statement.encode(), key=key, staging=staging, repo=a.repo)
    output.say(f"SBOM ({len(debs)} Debian packages, {len(dists)} Python distributions) {published.sbom['digest']}")
    output.say(f"provenance (SLSA v1) {published.provenance['digest']}")
    return bom, statement


def base_image_digest(ctx: Context, platform: Platform | None = None) -> str | None:
    """The local base's digest (for `platform`), or None when it cannot be read (the documents then say so:
    never a placeholder digest). A cluster's Job pulls the base itself, through --registry-mirror when given:
    its digest is read there, by what the tag names now."""
    if ctx.args.kube.context:
        mirror = ctx.args.kube.registry_mirror
        ref = f"{mirror}/{BASE_REF.removeprefix('docker.io/')}" if mirror else BASE_REF
        found = runner.run(cmdline.skopeo_inspect(ref, raw=True), stage="promote", ok_codes=(0, 1, 2), timeout=60)
        if found.code == 0:
            return "sha256:" + hashlib.sha256(found.stdout.encode()).hexdigest()
        log.warning("the base image %s cannot be inspected (%s): the SBOM and provenance record it without a "
                    "digest", ref, runner.first_error_line(found.stderr))
        return None
    facts = podman.image(ctx.profile, base_ref(platform) if platform else BASE_REF, stage="promote")
    if facts and facts.digest:
        return facts.digest
    log.warning("the base image %s cannot be inspected: the SBOM and provenance record it without a digest",
                BASE_REF)
    return None


def tag_digest(ref: str, access: Access) -> str | None:
    result = runner.run(cmdline.skopeo_inspect(ref, auth=access.tool), stage="promote", ok_codes=(0, 1, 2))
    return tooloutput.skopeo_digest(result.stdout) if result.code == 0 else None
