"""SLSA provenance v1 for a pushed image, as an in-toto Statement, built with the in-toto project's own
Python bindings (in-toto-attestation): its Statement and ResourceDescriptor wrappers validate the
envelope, and the predicate is checked against the SLSA provenance v1 schema (its protobuf) before use."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://todo-image-pipeline.invalid/buildtypes/containerfile/v1"
MEDIA_TYPE = "application/vnd.in-toto+json"


@dataclass(frozen=True)
class BuildFacts:
    image: str  # registry/repo
    digest: str  # sha256:...
    containerfile: str
    context: str
    source_uri: str
    commit: str
    builder: str  # buildah | kaniko
    builder_version: str
    base_ref: str
    base_digest: str | None  # None: unknown, and then not claimed
    requirements: dict[str, str]  # name -> sha256 of each lock/requirements file
    invocation: str  # the run id
    started: float
    finished: float
    platform: str | None = None  # os/arch, in a multi-platform run
    emulated: bool = False  # built under qemu user emulation


def _time(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def predicate(f: BuildFacts) -> dict[str, Any]:
    # SLSA's ResourceDescriptor needs one of uri/digest: an unknown base digest is left out, not invented
    base: dict[str, Any] = {"uri": f"docker://{f.base_ref}"}
    if f.base_digest:
        base["digest"] = {"sha256": f.base_digest.split(":", 1)[-1]}
    deps = [base]
    deps += [{"name": name, "digest": {"sha256": sha}} for name, sha in sorted(f.requirements.items())]
    pred = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "containerfile": f.containerfile, "context": f.context,
                "source": {"uri": f.source_uri, "digest": {"gitCommit": f.commit}},
                "builder": {"name": f.builder, "version": f.builder_version},
                **({"platform": f.platform} if f.platform else {}),
            },
            **({"internalParameters": {"emulated": f.emulated}} if f.platform else {}),
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": f"https://todo-image-pipeline.invalid/builders/{f.builder}@"
                              f"{f.builder_version}"},
            "metadata": {"invocationId": f.invocation, "startedOn": _time(f.started),
                         "finishedOn": _time(f.finished)},
        },
    }
    json_format.ParseDict(pred, provenance_pb2.Provenance())  # raises on a field SLSA v1 does not define
    return pred


def statement(f: BuildFacts) -> str:
    subject = ResourceDescriptor(name=f.image, digest={"sha256": f.digest.split(":", 1)[1]})
    stmt = Statement([subject.pb], PREDICATE_TYPE, predicate(f))
    stmt.validate()
    return json.dumps(json_format.MessageToDict(stmt.pb), indent=2, sort_keys=True)
