"""The OCI distribution client every part of the pipeline shares (verify, multi-platform pushes, kaniko's
cache checks, the supply chain): manifests, blobs and tags of one repository, and the media types.

HTTP through imagepipe.registry.protocol (Basic and token auth, certs.d trust); a 5xx is retried 3 times.
"""

from __future__ import annotations

import hashlib
from typing import Any

import requests

from imagepipe.errors import PipelineError
from imagepipe.exec.retry import retry
from imagepipe.registry.access import Access
from imagepipe.registry.protocol import parse_challenge, refused, session

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)  # a manifest that names other manifests (per platform)
EMPTY = b"{}"
EMPTY_DESC = {"mediaType": "application/vnd.oci.empty.v1+json",
              "digest": "sha256:" + hashlib.sha256(EMPTY).hexdigest(), "size": 2}
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, "application/vnd.docker.distribution.manifest.v2+json",
                    DOCKER_LIST])


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
