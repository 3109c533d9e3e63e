"""ci/admission-policy.yaml with its two placeholders filled: sigstore policy-controller's ClusterImagePolicies
that admit an image only when it is signed by the cosign key promote signs with and its verification
attestation records every check passed (docs/admission.md). Pure: the key and the image glob in, the
policies out (as objects for the API, or as YAML for `kubectl apply -f -`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from imagepipe.paths import ROOT

POLICY = ROOT / "ci/admission-policy.yaml"
NAMES = ("imagepipe-signed", "imagepipe-verified")
# what policy-controller v0.13.1 accepts as a glob (pkg/apis/glob: validGlob)
GLOB = re.compile(r"^[a-zA-Z0-9_:/*.@-]+$")
PEM = re.compile(r"^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n?$")


def documents(public_key: str, image_glob: str, *, source: Path = POLICY) -> list[dict[str, Any]]:
    """The policies of `source` for the images `image_glob` matches, checked against `public_key` (PEM).
    ValueError names a glob policy-controller would refuse, or a key that is not one PEM public key."""
    if not GLOB.match(image_glob):
        raise ValueError(f"{image_glob!r} is not a policy-controller image glob (letters, digits and -_:/*.@ only, "
                         "e.g. ghcr.io/ORG/todo-backend**)")
    if not PEM.match(public_key.strip() + "\n"):
        raise ValueError("the public key is not one PEM public key (-----BEGIN PUBLIC KEY-----)")
    docs = [d for d in yaml.safe_load_all(source.read_text()) if d]
    for doc in docs:
        spec = doc["spec"]
        spec["images"] = [{"glob": image_glob}]
        for authority in spec["authorities"]:
            authority["key"]["data"] = public_key.strip() + "\n"
    return docs


class _Blocks(yaml.SafeDumper):
    """Multi-line strings (the key, the Rego) as literal blocks, as the file has them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Blocks.add_representer(str, _str)


def render(public_key: str, image_glob: str) -> str:
    """The filled policies as YAML, for `kubectl apply -f -`."""
    return yaml.dump_all(documents(public_key, image_glob), Dumper=_Blocks, sort_keys=False)
