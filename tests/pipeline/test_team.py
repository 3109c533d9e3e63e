"""The team's set-up for the whole job as a pod (imagepipe.cluster.team, which the in-cluster tests and the
bench make on the local cluster): its Secret holds every item ci/pipeline-job.yaml reads, and its cosign key
pair is made by the real cosign, the private half opened only by its password. No cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagepipe.builders import pipelinejob
from imagepipe.cluster import team
from imagepipe.exec import cmdline, runner
from imagepipe.services import sigstore

MOUNT = "/etc/imagepipe/signing/"


def _cosign() -> Path:
    if not os.environ.get("IMAGEPIPE_COSIGN") and sigstore.cached() is None:
        pytest.skip("no cosign built on this machine (any cosign e2e test or `pipeline.py public-key` builds it)")
    return sigstore.cosign()


def test_the_secret_holds_every_item_the_pipeline_job_reads():
    key = team.Key("SECRET", "PUBLIC", "F" * 40, team.CosignPair("COSIGN KEY", "pw", "COSIGN PUB"))
    data = team.secret_data(key)
    assert data == {"key.asc": "SECRET", "public.asc": "PUBLIC", "cosign.key": "COSIGN KEY", "cosign.password": "pw",
                    "cosign.pub": "COSIGN PUB"}
    pod = pipelinejob.load()["spec"]["template"]["spec"]
    (signing,) = [v for v in pod["volumes"] if v["name"] == "signing"]
    assert signing["secret"]["secretName"] == team.KEY_SECRET
    (main,) = pod["containers"]
    files = [a.removeprefix(MOUNT) for a in main["args"] if a.startswith(MOUNT)]
    assert files == ["key.asc", "cosign.key"]
    refs = [e["valueFrom"]["secretKeyRef"] for e in main["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert refs == [{"name": team.KEY_SECRET, "key": "cosign.password", "optional": False}]
    assert {*files, "cosign.password"} <= set(data)


def test_the_cosign_pair_is_cosigns_own_and_opens_only_with_its_password(tmp_path):
    binary = _cosign()
    pair = team.new_cosign_pair()
    other = team.new_cosign_pair()
    assert pair.key.startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    assert pair.public.startswith("-----BEGIN PUBLIC KEY-----")
    assert len(pair.password) >= 24 and pair.password != other.password and pair.public != other.public
    key = tmp_path / "cosign.key"
    key.write_text(pair.key)
    opened = runner.run(cmdline.cosign_public_key(binary, key), env=cmdline.cosign_env(password=pair.password))
    assert opened.stdout.strip() == pair.public.strip()
    refused = runner.run(cmdline.cosign_public_key(binary, key), env=cmdline.cosign_env(password=other.password),
                         ok_codes=(0, 1))
    assert refused.code == 1 and "decryption failed" in refused.stderr
