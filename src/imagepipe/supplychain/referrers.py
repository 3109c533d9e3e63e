"""OCI artifacts attached to an image digest: pushed with `subject` = the image, and found through the OCI
1.1 referrers tag schema (tag `sha256-<hex>` holding an index of the referrers), because distribution 2.8
has no referrers API. Standard clients (oras, cosign, crane) fall back to the same tag.

Plain HTTP through requests (already a dependency): the distribution API calls are few (blob upload,
manifest put/get), and the tag schema needs a read-modify-write of the index that a client library would
not do for us either. Basic-auth registries are supported (--creds); token-auth registries are not yet.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import requests

from imagepipe import commands
from imagepipe.errors import PipelineError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = b"{}"
EMPTY_DESC = {"mediaType": "application/vnd.oci.empty.v1+json",
              "digest": "sha256:" + hashlib.sha256(EMPTY).hexdigest(), "size": 2}
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, "application/vnd.docker.distribution.manifest.v2+json"])


@dataclass(frozen=True)
class Pushed:
    digest: str  # of the artifact manifest
    manifest: bytes
    blob_digest: str


class Registry:
    def __init__(self, registry: str, repo: str, creds: str | None = None) -> None:
        from imagepipe.services.hostaccess import insecure_registries  # plain HTTP where the containers tools say

        scheme = "http" if commands.registry_is_local(registry) or registry in insecure_registries() else "https"
        self.base = f"{scheme}://{registry}/v2/{repo}"
        self.http = requests.Session()
        if creds:
            user, _, password = creds.partition(":")
            self.http.auth = (user, password)

    def _check(self, r: requests.Response, what: str) -> requests.Response:
        if r.status_code >= 400:
            raise PipelineError(f"the registry refused {what}: {r.status_code} {r.text[:200]}", stage="promote")
        return r

    def put_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.http.head(f"{self.base}/blobs/{digest}", timeout=30).status_code == 200:
            return digest
        start = self._check(self.http.post(f"{self.base}/blobs/uploads/", timeout=30), "a blob upload")
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        url = location if location.startswith("http") else self.base.split("/v2/")[0] + location
        self._check(self.http.put(f"{url}{sep}digest={digest}", data=data, timeout=120,
                                  headers={"Content-Type": "application/octet-stream"}), "a blob")
        return digest

    def put_manifest(self, ref: str, manifest: bytes, media_type: str) -> str:
        r = self._check(self.http.put(f"{self.base}/manifests/{ref}", data=manifest, timeout=30,
                                      headers={"Content-Type": media_type}), f"manifest {ref}")
        return str(r.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(manifest).hexdigest())

    def get_manifest(self, ref: str) -> tuple[bytes, str] | None:
        r = self.http.get(f"{self.base}/manifests/{ref}", headers={"Accept": ACCEPT}, timeout=30)
        if r.status_code == 404:
            return None
        self._check(r, f"manifest {ref}")
        return r.content, r.headers.get("Content-Type", "")

    def delete_tag(self, tag: str) -> bool:
        """Remove one tag (OCI 1.1 allows DELETE of a tag; distribution 2.8 answers 400 UNSUPPORTED)."""
        try:
            return self.http.delete(f"{self.base}/manifests/{tag}", timeout=30).status_code in (200, 202)
        except requests.RequestException:
            return False

    def get_blob(self, digest: str) -> bytes:
        return self._check(self.http.get(f"{self.base}/blobs/{digest}", timeout=60), f"blob {digest}").content


def tag_for(digest: str) -> str:
    """The referrers tag schema's tag for a subject digest."""
    return digest.replace(":", "-")


def attach(reg: Registry, *, subject_digest: str, artifact_type: str, payload: bytes,
           annotations: dict[str, str]) -> Pushed:
    """Push `payload` as an artifact whose subject is the image, and list it in the referrers index."""
    found = reg.get_manifest(subject_digest)
    if found is None:
        raise PipelineError(f"no manifest {subject_digest} to attach to", stage="promote")
    subject_manifest, subject_type = found
    reg.put_blob(EMPTY)
    blob = reg.put_blob(payload)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type, "config": EMPTY_DESC,
        "layers": [{"mediaType": artifact_type, "digest": blob, "size": len(payload)}],
        "subject": {"mediaType": subject_type.split(";")[0], "digest": subject_digest, "size": len(subject_manifest)},
        "annotations": annotations,
    }, sort_keys=True).encode()
    digest = reg.put_manifest("sha256:" + hashlib.sha256(manifest).hexdigest(), manifest, OCI_MANIFEST)
    index = referrers(reg, subject_digest)
    index["manifests"] = [d for d in index["manifests"] if d["digest"] != digest]
    index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
                               "artifactType": artifact_type, "annotations": annotations})
    reg.put_manifest(tag_for(subject_digest), json.dumps(index, sort_keys=True).encode(), OCI_INDEX)
    return Pushed(digest, manifest, blob)


def referrers(reg: Registry, subject_digest: str) -> dict[str, Any]:
    found = reg.get_manifest(tag_for(subject_digest))
    if found is None:
        return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    return dict(json.loads(found[0]))
