"""OCI artifacts attached to an image digest: pushed with `subject` = the image, and found through the OCI
1.1 referrers API where the registry has it (GET /v2/NAME/referrers/DIGEST), else through the referrers tag
schema (tag `sha256-<hex>` holding an index of the referrers), as on distribution 2.8. Standard clients
(oras, cosign, crane) read both. A registry that says it indexed the subject (the OCI-Subject header) gets no
tag; one that does not gets the tag as well, so clients of either kind find the artifacts.

The registry client is imagepipe.registry.oci.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from imagepipe.errors import PipelineError
from imagepipe.registry.oci import EMPTY, EMPTY_DESC, OCI_INDEX, OCI_MANIFEST, Registry


@dataclass(frozen=True)
class Pushed:
    digest: str  # of the artifact manifest
    manifest: bytes
    blob_digest: str
    indexed: bool  # the registry indexed the subject itself (OCI-Subject), so no tag was written


def tag_for(digest: str) -> str:
    """The referrers tag schema's tag for a subject digest."""
    return digest.replace(":", "-")


def attach(reg: Registry, *, subject_digest: str, artifact_type: str, payload: bytes, filename: str,
           annotations: dict[str, str]) -> Pushed:
    """Push `payload` as an artifact whose subject is the image, and list it in the referrers index. The
    layer carries its file name (`org.opencontainers.image.title`), which `oras pull` needs to write it."""
    found = reg.get_manifest(subject_digest)
    if found is None:
        raise PipelineError(f"no manifest {subject_digest} to attach to", stage="promote")
    subject_manifest, subject_type = found
    reg.put_blob(EMPTY)
    blob = reg.put_blob(payload)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type, "config": EMPTY_DESC,
        "layers": [{"mediaType": artifact_type, "digest": blob, "size": len(payload),
                    "annotations": {"org.opencontainers.image.title": filename}}],
        "subject": {"mediaType": subject_type.split(";")[0], "digest": subject_digest, "size": len(subject_manifest)},
        "annotations": annotations,
    }, sort_keys=True).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    put = reg.put_manifest(digest, manifest, OCI_MANIFEST)
    if put.headers.get("OCI-Subject") == subject_digest:
        return Pushed(digest, manifest, blob, indexed=True)
    index = tag_index(reg, subject_digest)
    index["manifests"] = [d for d in index["manifests"] if d["digest"] != digest]
    index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
                               "artifactType": artifact_type, "annotations": annotations})
    reg.put_manifest(tag_for(subject_digest), json.dumps(index, sort_keys=True).encode(), OCI_INDEX)
    return Pushed(digest, manifest, blob, indexed=False)


def tag_index(reg: Registry, subject_digest: str) -> dict[str, Any]:
    found = reg.get_manifest(tag_for(subject_digest))
    if found is None:
        return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    return dict(json.loads(found[0]))


def referrers(reg: Registry, subject_digest: str) -> tuple[str, list[dict[str, Any]]]:
    """('api' or 'tag schema', the referrers' descriptors), through the API where the registry has it. An
    entry without the manifest's artifactType (go-containerregistry's registry reports the config's media
    type instead) is completed from the manifest itself."""
    api = reg.referrers_api(subject_digest)
    if api is None:
        return "tag schema", list(tag_index(reg, subject_digest)["manifests"])
    out = []
    for desc in api.get("manifests") or []:
        if desc.get("artifactType") in (None, "", EMPTY_DESC["mediaType"]):
            found = reg.get_manifest(desc["digest"])
            if found is not None:
                desc = {**desc, "artifactType": json.loads(found[0]).get("artifactType", "")}
        out.append(desc)
    return "api", out
