"""A verified image made trusted (promote), and checked again downstream (`pipeline.py attest verify`).

publish(): every tag promote writes is signed (simple signing, lookaside); an SBOM (CycloneDX) and SLSA
provenance (in-toto) are pushed as OCI artifacts whose subject is the image digest, their manifests signed
the same way. verify(): the image signature, both artifacts, their signatures and subjects, the SBOM's
shape; each problem is one line.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from imagepipe.errors import PipelineError
from imagepipe.image.refs import ImageRef
from imagepipe.registry import oci
from imagepipe.registry.access import Access
from imagepipe.supplychain import referrers, sbom, signing
from imagepipe.supplychain.provenance import MEDIA_TYPE as PROVENANCE_TYPE


@dataclass
class Published:
    signer: str
    lookaside: str
    signed_tags: list[str] = field(default_factory=list)
    digest: str = ""  # the signed image's
    signatures: dict[str, str] = field(default_factory=dict)  # lookaside file -> its sha256
    sbom: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        return {"signature": {"type": "simple-signing (GPG)", "signer": self.signer, "lookaside": self.lookaside,
                              "tags": self.signed_tags, "digest": self.digest, "signatures": self.signatures},
                "sbom": self.sbom, "provenance": self.provenance}


def publish_attestation(reg: oci.Registry, *, repo_ref: str, digest: str, artifact_type: str, payload: bytes,
                        key: signing.SigningKey, staging: Path, repo: str) -> dict[str, str]:
    filename = "sbom.cdx.json" if artifact_type == sbom.MEDIA_TYPE else "provenance.intoto.json"
    pushed = referrers.attach(reg, subject_digest=digest, artifact_type=artifact_type, payload=payload,
                              filename=filename, annotations={"org.opencontainers.image.title": artifact_type})
    signing.sign_manifest(pushed.manifest, f"{repo_ref}@{pushed.digest}", key=key, staging=staging, repo=repo,
                          digest=pushed.digest)
    return {"digest": pushed.digest, "blob": pushed.blob_digest, "artifactType": artifact_type}


def fetch_signatures(lookaside: str, repo: str, digest: str) -> list[bytes]:
    out = []
    for n in range(1, 20):
        r = requests.get(f"{lookaside}/{repo}@{digest.replace(':', '=')}/signature-{n}", timeout=10)
        if r.status_code != 200:
            break
        out.append(r.content)
    return out


def signed_by_key(signatures: list[bytes], digest: str, public_key: Path, work: Path) -> tuple[bool, str]:
    """(ok, why not): one signature verifies with the key and names this manifest digest."""
    if not signatures:
        return False, "no signature"
    reasons = []
    for sig in signatures:
        try:
            _, payload = signing.verify_signature(sig, public_key, work=work)
        except PipelineError as e:
            reasons.append(e.message)
            continue
        critical = payload.get("critical")
        image = critical.get("image") if isinstance(critical, dict) else None
        signed = image.get("docker-manifest-digest") if isinstance(image, dict) else None
        if signed == digest:
            return True, ""
        reasons.append(f"a signature names {signed}, not {digest}")
    return False, "; ".join(dict.fromkeys(reasons))


def verify(ref: ImageRef, *, public_key: Path, lookaside: str, access: Access,
           cosign_public: Path | None = None) -> list[str]:
    """Problems with REGISTRY/REPO@sha256:… (empty: signed, attested, consistent). An index: its own
    signature, then each platform's image as an image, with the platform its documents name. With
    `cosign_public`, the cosign signatures and attestations too (supplychain.cosigning)."""
    digest, repo = str(ref.digest), ref.repository
    reg = oci.Registry(access, repo, stage="attest")
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="imagepipe-attest-") as tmp:
        work = Path(tmp)
        ok, why = signed_by_key(fetch_signatures(lookaside, repo, digest), digest, public_key, work)
        fetched = reg.get_manifest(digest)
        is_index = fetched is not None and json.loads(fetched[0]).get("mediaType", fetched[1]) in oci.INDEX_TYPES
        if not ok:
            problems.append(f"{'index' if is_index else 'image'} {digest}: {why}")
        if fetched is not None and is_index:
            for entry in json.loads(fetched[0]).get("manifests", []):
                platform = f"{entry['platform']['os']}/{entry['platform']['architecture']}"
                ok, why = signed_by_key(fetch_signatures(lookaside, repo, entry["digest"]), entry["digest"],
                                        public_key, work)
                found = [] if ok else [f"image {entry['digest']}: {why}"]
                found += _check_image(reg, entry["digest"], repo, lookaside, public_key, work, platform)
                problems += [f"{platform}: {p}" for p in found]
        else:
            problems += _check_image(reg, digest, repo, lookaside, public_key, work, None)
        if cosign_public is not None:
            problems += _cosign(ref, fetched, is_index, cosign_public, access, work)
    return problems


def _cosign(ref: ImageRef, fetched: tuple[bytes, str] | None, is_index: bool, public: Path, access: Access,
            work: Path) -> list[str]:
    """The cosign proofs: an index's signature, then each platform's image as an image; else the image's."""
    from imagepipe.supplychain import cosigning

    reg = cosigning.registry(access)
    digest = str(ref.digest)
    if not is_index or fetched is None:
        return cosigning.problems(public, str(ref), digest, reg, work)
    why = cosigning.verify(public, str(ref), reg, work)
    found = [f"index {digest}: cosign signature: {why}"] if why else []
    for entry in json.loads(fetched[0]).get("manifests", []):
        platform = f"{entry['platform']['os']}/{entry['platform']['architecture']}"
        found += [f"{platform}: {p}" for p in cosigning.problems(public, str(ref.with_digest(entry["digest"])),
                                                                 entry["digest"], reg, work)]
    return found


def _check_image(reg: oci.Registry, digest: str, repo: str, lookaside: str, public_key: Path, work: Path,
                 platform: str | None) -> list[str]:
    """An image's SBOM and provenance: present, signed, about it (and, in an index, about its platform)."""
    problems: list[str] = []
    _, listed = referrers.referrers(reg, digest)
    for kind, media in (("SBOM", sbom.MEDIA_TYPE), ("provenance", PROVENANCE_TYPE)):
        found = [d for d in listed if d.get("artifactType") == media]
        if not found:
            problems.append(f"{kind}: no {media} artifact refers to {digest}")
            continue
        problems += _check_artifact(reg, kind, found[-1], digest, repo, lookaside, public_key, work, platform)
    return problems


def _check_artifact(reg: oci.Registry, kind: str, desc: dict[str, Any], digest: str, repo: str,
                    lookaside: str, public_key: Path, work: Path, platform: str | None = None) -> list[str]:
    fetched = reg.get_manifest(desc["digest"])
    if fetched is None:
        return [f"{kind}: artifact manifest {desc['digest']} is missing"]
    manifest = json.loads(fetched[0])
    problems = []
    subject = (manifest.get("subject") or {}).get("digest")
    if subject != digest:
        problems.append(f"{kind}: its subject is {subject}, not this image ({digest})")
    ok, why = signed_by_key(fetch_signatures(lookaside, repo, desc["digest"]), desc["digest"], public_key, work)
    if not ok:
        problems.append(f"{kind}: artifact {desc['digest']}: {why}")
    layer = (manifest.get("layers") or [{}])[0]
    blob = reg.get_blob(layer["digest"])
    if "sha256:" + hashlib.sha256(blob).hexdigest() != layer["digest"]:
        return [*problems, f"{kind}: blob does not match its digest {layer['digest']} (altered in the registry)"]
    try:
        doc = json.loads(blob)
    except ValueError:
        return [*problems, f"{kind}: not JSON"]
    if kind == "SBOM" and (doc.get("bomFormat") != "CycloneDX" or not doc.get("components")):
        problems.append("SBOM: not a CycloneDX document with components")
    if kind == "provenance":
        subjects = [s.get("digest", {}).get("sha256") for s in doc.get("subject", [])]
        if digest.split(":", 1)[1] not in subjects:
            problems.append(f"provenance: its statement's subject is not {digest}")
    if platform is not None and named_platform(kind, doc) != platform:
        problems.append(f"{kind}: names platform {named_platform(kind, doc)}, not {platform}")
    return problems


def named_platform(kind: str, doc: dict[str, Any]) -> str | None:
    """The platform an SBOM (metadata component property) or a provenance (externalParameters) names."""
    if kind == "SBOM":
        props = ((doc.get("metadata") or {}).get("component") or {}).get("properties") or []
        return next((p.get("value") for p in props if p.get("name") == "imagepipe:platform"), None)
    params = ((doc.get("predicate") or {}).get("buildDefinition") or {}).get("externalParameters") or {}
    value = params.get("platform")
    return str(value) if value else None
