"""OCI artifacts attached to an image digest: pushed with `subject` = the image, and found through the OCI
1.1 referrers API where the registry has it (GET /v2/NAME/referrers/DIGEST), else through the referrers tag
schema (tag `sha256-<hex>` holding an index of the referrers), as on distribution 2.8. Standard clients
(oras, cosign, crane) read both. A registry that says it indexed the subject (the OCI-Subject header) gets no
tag; one that does not gets the tag as well, so clients of either kind find the artifacts.

HTTP through imagepipe.registryhttp (Basic and token auth, certs.d trust); a 5xx is retried 3 times.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import requests

from imagepipe.errors import PipelineError
from imagepipe.registryaccess import Access
from imagepipe.registryhttp import parse_challenge, refused, session
from imagepipe.retry import retry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)  # a manifest that names other manifests (per platform)
EMPTY = b"{}"
EMPTY_DESC = {"mediaType": "application/vnd.oci.empty.v1+json",
              "digest": "sha256:" + hashlib.sha256(EMPTY).hexdigest(), "size": 2}
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, "application/vnd.docker.distribution.manifest.v2+json",
                    DOCKER_LIST])


@dataclass(frozen=True)
class Pushed:
    digest: str  # of the artifact manifest
    manifest: bytes
    blob_digest: str
    indexed: bool  # the registry indexed the subject itself (OCI-Subject), so no tag was written


class ServerError(PipelineError):
    """A 5xx or a dropped connection: retried."""


class Registry:
    def __init__(self, access: Access, repo: str, *, stage: str = "promote") -> None:
        self.access, self.repo, self.stage = access, repo, stage
        self.base = f"{access.base}/v2/{repo}"
        self.http = session(access.auth, verify=access.verify, stage=stage)

    def request(self, method: str, url: str, what: str, *, ok: tuple[int, ...] = (),
                **kw: Any) -> requests.Response:
        """One call, retried on a 5xx or a dropped connection; a 4xx other than `ok` is one line."""
        timeout = kw.pop("timeout", 60)

        def once() -> requests.Response:
            try:
                r = self.http.request(method, url, timeout=timeout, verify=self.access.verify, **kw)
            except requests.ConnectionError as e:
                raise ServerError(f"the registry {self.access.registry} dropped {what} ({type(e).__name__})",
                                  stage=self.stage) from None
            if r.status_code >= 500:
                raise ServerError(f"the registry {self.access.registry} answered {r.status_code} to {what} "
                                  f"3 times: {r.text[:200]}", stage=self.stage)
            return r

        r = retry(once, attempts=3, on=ServerError, backoff=1.0, what=what)
        if r.status_code in (401, 403) and r.status_code not in ok:
            scheme, _ = parse_challenge(r.headers.get("WWW-Authenticate", ""))
            if self.access.auth.anonymous or scheme != "bearer" or not r.request.headers.get("X-Imagepipe-Retry"):
                raise refused(self.access.auth, self.stage)
            raise PipelineError(f"the registry {self.access.registry} denied {what} in {self.repo}: the credentials "
                                f"(from {self.access.auth.source}) do not allow it ({r.status_code})", stage=self.stage)
        if r.status_code >= 400 and r.status_code not in ok:
            raise PipelineError(f"the registry refused {what}: {r.status_code} {r.text[:200]}", stage=self.stage)
        return r

    def put_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.request("HEAD", f"{self.base}/blobs/{digest}", "a blob check", ok=(404,)).status_code == 200:
            return digest
        start = self.request("POST", f"{self.base}/blobs/uploads/", "a blob upload")
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        url = location if location.startswith("http") else self.access.base + location
        self.request("PUT", f"{url}{sep}digest={digest}", "a blob", data=data, timeout=120,
                     headers={"Content-Type": "application/octet-stream"})
        return digest

    def put_manifest(self, ref: str, manifest: bytes, media_type: str) -> requests.Response:
        return self.request("PUT", f"{self.base}/manifests/{ref}", f"manifest {ref}", data=manifest,
                            headers={"Content-Type": media_type})

    def get_manifest(self, ref: str) -> tuple[bytes, str] | None:
        r = self.request("GET", f"{self.base}/manifests/{ref}", f"manifest {ref}", ok=(404,),
                         headers={"Accept": ACCEPT})
        return None if r.status_code == 404 else (r.content, r.headers.get("Content-Type", ""))

    def referrers_api(self, digest: str) -> dict[str, Any] | None:
        """The registry's referrers index for `digest`, or None when it has no referrers API."""
        r = self.request("GET", f"{self.base}/referrers/{digest}", "the referrers", ok=(400, 404, 405),
                         headers={"Accept": OCI_INDEX})
        if r.status_code != 200 or not r.headers.get("Content-Type", "").startswith(OCI_INDEX):
            return None
        return dict(r.json())

    def delete_tag(self, tag: str) -> bool:
        """Remove one tag (OCI 1.1 allows DELETE of a tag; distribution 2.8 answers 400 UNSUPPORTED)."""
        try:
            r = self.request("DELETE", f"{self.base}/manifests/{tag}", f"deleting tag {tag}", ok=(400, 404, 405))
        except PipelineError:
            return False
        return r.status_code in (200, 202)

    def get_blob(self, digest: str) -> bytes:
        return self.request("GET", f"{self.base}/blobs/{digest}", f"blob {digest}").content


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
