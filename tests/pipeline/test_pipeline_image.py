"""The pipeline as a CI job in the cluster: ci/pipeline-job.yaml is a valid batch/v1 Job (the official
client's models) with the measured least privilege for podman inside the pod; the pipeline image's tag is
a function of what it is made from; the image's venv must have been made from this checkout's lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from k8s_models import round_trip

from imagepipe.cli.verbs import pipelineimage
from imagepipe.paths import ROOT


def test_the_pipeline_job_is_a_valid_job_with_the_measured_security_context():
    manifest = yaml.safe_load((ROOT / "ci/pipeline-job.yaml").read_text())
    job, back = round_trip(manifest, "V1Job")
    assert back == manifest  # no misspelt or unknown key
    pod = job.spec.template.spec
    assert pod.service_account_name == "imagepipe-builder" and pod.automount_service_account_token is True
    pipeline = next(c for c in pod.containers if c.name == "pipeline")
    sc = pipeline.security_context
    assert sc.privileged is False and sc.capabilities.add == ["SYS_ADMIN", "SYS_PTRACE"] and sc.run_as_user == 0
    assert sc.seccomp_profile.type == "RuntimeDefault"
    assert {m.mount_path for m in pipeline.volume_mounts} == {"/workspace", "/var/lib/containers",
                                                              "/etc/imagepipe/signing", "/lookaside"}
    assert pipeline.args[:4] == ["--builder", "kaniko", "--kube-context", "in-cluster"]
    # signed with the team's key from its Secret, into ci/lookaside.yaml's volume
    volumes = {v.name: v for v in pod.volumes}
    assert volumes["signing"].secret.secret_name == "imagepipe-signing"
    assert volumes["lookaside"].persistent_volume_claim.claim_name == "imagepipe-lookaside"
    args = pipeline.args
    assert args[args.index("--signing-key") + 1] == "/etc/imagepipe/signing/key.asc"
    assert args[args.index("--lookaside-dir") + 1] == "/lookaside"
    # cosign signs and attests with the team's key from the same Secret, its password from there too (not
    # optional: a Secret without it stops the pod before anything is built)
    assert args[args.index("--cosign-key") + 1] == "/etc/imagepipe/signing/cosign.key"
    (password,) = [e for e in pipeline.env if e.name == "COSIGN_PASSWORD"]
    ref = password.value_from.secret_key_ref
    assert (ref.name, ref.key, ref.optional) == ("imagepipe-signing", "cosign.password", False)
    assert password.value is None


def test_the_lookaside_serves_its_volume_read_only_behind_a_service():
    claim, deployment, service = yaml.safe_load_all((ROOT / "ci/lookaside.yaml").read_text())
    _, back = round_trip(claim, "V1PersistentVolumeClaim")
    assert back == claim and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    dep, back = round_trip(deployment, "V1Deployment")
    assert back == deployment
    (http,) = dep.spec.template.spec.containers
    assert http.volume_mounts[0].read_only is True and http.security_context.run_as_non_root is True
    assert dep.spec.template.spec.volumes[0].persistent_volume_claim.claim_name == claim["metadata"]["name"]
    svc, back = round_trip(service, "V1Service")
    assert back == service and svc.spec.ports[0].target_port == http.ports[0].container_port
    assert svc.spec.selector == dep.spec.selector.match_labels


def test_the_image_tag_follows_its_inputs(tmp_path, monkeypatch):
    # inputs of known bytes, so the tag is known: the first 12 hex digits of sha256 over the Containerfile, then
    # each input as its name, NUL, its bytes, in name order (given out of order here; the literals are
    # `sha256sum` of those bytes)
    containerfile, lock, conf = tmp_path / "Containerfile", tmp_path / "requirements.lock", tmp_path / "containers.conf"
    containerfile.write_text("FROM scratch\n")
    lock.write_text("pkg==1.0\n")
    conf.write_text("[engine]\n")
    monkeypatch.setattr(pipelineimage, "CONTAINERFILE", containerfile)
    monkeypatch.setattr(pipelineimage, "INPUTS", {"ci/pipeline-containers.conf": conf,
                                                  "build/requirements.lock": lock})
    assert pipelineimage.tag() == "6f545c7a71ab"
    lock.write_text("pkg==1.0\n# changed\n")
    assert pipelineimage.tag() == "5d14afa54168"


def test_the_image_holds_cosign_and_its_tag_follows_the_cosign_pin():
    # cosign is copied in as this machine built it: what it is built from is hashed into the tag, and the
    # probe runs it
    assert {"ci/sigstore/go.mod", "ci/sigstore/go.sum"} <= set(pipelineimage.INPUTS)
    assert f"COPY {pipelineimage.COSIGN} /usr/local/bin/cosign" in pipelineimage.CONTAINERFILE.read_text()
    assert "cosign version" in pipelineimage.PROBE


def test_an_image_venv_from_another_lock_is_one_line(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin/python")
    (tmp_path / "requirements.lock").write_text("# another lock\n")
    proc = subprocess.run([sys.executable, str(ROOT / "build/pipeline.py"), "--help"], capture_output=True, text=True,
                          env={**os.environ, "IMAGEPIPE_VENV": str(venv)}, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"error: the venv in IMAGEPIPE_VENV ({venv}) was not made from this checkout's "
                                   "build/requirements.lock: rebuild the pipeline image (python3 build/pipeline.py "
                                   "pipeline-image) or unset IMAGEPIPE_VENV")


def test_containers_conf_for_the_pod_holds_the_measured_settings():
    import tomllib

    conf = tomllib.loads(Path(ROOT / "ci/pipeline-containers.conf").read_text())
    assert conf["containers"]["keyring"] is False and conf["engine"]["no_pivot_root"] is True
    assert conf["engine"]["cgroup_manager"] == "cgroupfs" and conf["containers"]["cgroups"] == "disabled"
