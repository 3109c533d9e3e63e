"""linux/amd64 and linux/arm64 from one command, arm64 under real qemu user emulation: the whole job with
buildah makes one signed index whose platforms each passed every check; the promoted tag runs as aarch64;
`attest verify` checks the index and each platform; a failing arm64 leaves `latest` where it was and signs
nothing; kaniko does the same per platform, and parity holds on arm64.

The arm64 stand-in base and wheelhouse are built once (the session's state directory and podman's store)
and reused by every test here: that is most of the time these tests take.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from pipeline_support import ROOT, WARM_CACHE, registry_client

from imagepipe.exec import cmdline, runner
from imagepipe.pipeline import multiarch
from imagepipe.supplychain import referrers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3000)]
PLATFORMS = "linux/amd64,linux/arm64"
REPO = "todo-backend-multi"


def split(image: str) -> tuple[str, str, str]:
    registry, rest = image.split("/", 1)
    repo, digest = rest.split("@")
    return registry, repo, digest


@pytest.fixture(scope="module")
def multi(pipeline, green, tmp_path_factory):
    """The whole job for both platforms with buildah, offline (the per-architecture wheelhouse)."""
    out = tmp_path_factory.mktemp("multi")
    proc = pipeline.run("--no-provision", "--platform", PLATFORMS, "--offline", "--repo", REPO,
                        "--report", str(out / "r.json"), timeout=2700)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "r.json").read_text()), proc


def test_one_index_of_two_verified_platforms(pipeline, multi):
    report, proc = multi
    registry, repo, digest = split(report["image"])
    body, media_type = registry_client(registry, repo).get_manifest(digest)
    assert media_type.startswith(multiarch.LIST_TYPE)
    listed = multiarch.platforms_of(body)
    assert [p for p, _ in listed] == ["linux/amd64", "linux/arm64"]
    by_platform = {p["platform"]: p for p in report["platforms"]}
    for platform, instance in listed:
        entry = by_platform[platform]
        assert entry["image"].endswith(instance) and entry["passed"], entry
        assert entry["emulated"] is (platform == "linux/arm64")
        arch = next(c for c in entry["checks"] if c["id"] == "architecture")
        assert arch["passed"] and arch["value"] == {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}[platform]
        size = next(c for c in entry["checks"] if c["id"] == "size")
        assert size["passed"] and float(size["value"]) <= 110, size  # #21: each platform <= 110 MB
        assert entry["sbom"]["digest"] and entry["provenance"]["digest"]
    assert pipeline.digest("latest", repo=REPO) == digest, "latest names the index"
    # each platform's steps and timings were printed
    assert "build linux-arm64 done in" in proc.stdout and "verify linux-arm64 done in" in proc.stdout
    assert re.search(r"linux/arm64: size by directory \(MB\): /.*/usr/lib [\d.]+", proc.stdout)
    assert all(p["size_by_dir_mb"] for p in report["platforms"])
    assert {"build linux-amd64", "build linux-arm64", "verify linux-arm64", "index"} <= set(report["timings"])


def test_attest_verify_checks_the_index_and_each_platform(pipeline, multi):
    report, _ = multi
    ok = pipeline.run("attest", "verify", report["image"])
    assert ok.returncode == 0, ok.stderr
    registry, repo, _ = split(report["image"])
    reg = registry_client(registry, repo)
    for entry in report["platforms"]:
        _, _, instance = split(entry["image"])
        _, listed = referrers.referrers(reg, instance)
        provenance = next(d for d in listed if d.get("artifactType") == "application/vnd.in-toto+json")
        layer = json.loads(reg.get_manifest(provenance["digest"])[0])["layers"][0]
        statement = json.loads(reg.get_blob(layer["digest"]))
        assert statement["predicate"]["buildDefinition"]["externalParameters"]["platform"] == entry["platform"]


def test_the_promoted_tag_runs_as_arm64_signed_and_passes_the_checks(pipeline, multi, profile, tmp_path):
    report, _ = multi
    registry, repo, digest = split(report["image"])
    scope = f"{registry}/{repo}"
    written = pipeline.run("trust", "--repo", repo)
    assert written.returncode == 0, written.stderr
    # the tag's arm64 platform, pulled through the signature policy: the index's and the platform's signatures
    policy, regd = pipeline.state / "trust/policy.json", pipeline.state / "trust/registries.d"
    pulled = subprocess.run(["skopeo", "--policy", str(policy), "--registries.d", str(regd), "--override-arch",
                             "arm64", "copy", "--src-tls-verify=false", f"docker://{scope}:latest",
                             f"dir:{tmp_path / 'arm64'}"], capture_output=True, text=True)
    assert pulled.returncode == 0, pulled.stderr
    runner.run(cmdline.podman(profile, "pull", "-q", "--tls-verify=false", "--platform", "linux/arm64",
                               f"{scope}:latest"))
    machine = runner.run(cmdline.podman_run(profile, f"{scope}:latest", remove=True, platform="linux/arm64",
                                             entrypoint="", command=["uname", "-m"])).stdout.strip()
    assert machine == "aarch64"
    verified = pipeline.run("verify", "--platform", "linux/arm64", "--report", str(tmp_path / "v.json"),
                            f"{scope}@{digest}")
    assert verified.returncode == 0, verified.stderr
    checks = json.loads((tmp_path / "v.json").read_text())["checks"]
    assert checks and all(c["id"].endswith("@linux-arm64 (emulated)") and c["passed"] for c in checks)


def test_a_failing_arm64_moves_nothing_and_signs_nothing(pipeline, multi, tmp_path):
    report, _ = multi
    before = pipeline.digest("latest", repo=REPO)
    # the same recipe, except that the arm64 image loses psql (an arm64-only defect)
    source = (ROOT / "build/Containerfile").read_text()
    defect = 'RUN if [ "$(uname -m)" = aarch64 ]; then rm /rootfs/usr/bin/psql; fi\n\n'
    broken = source.replace("FROM scratch AS runner", defect + "FROM scratch AS runner", 1)
    assert broken != source
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text(broken)
    proc = pipeline.run("--no-provision", "--platform", PLATFORMS, "--offline", "--repo", REPO, "--containerfile",
                        str(containerfile), "--report", str(tmp_path / "r.json"), timeout=2700)
    assert proc.returncode == 1, proc.stderr
    failed = json.loads((tmp_path / "r.json").read_text())
    by_platform = {p["platform"]: p for p in failed["platforms"]}
    assert by_platform["linux/amd64"]["passed"] and not by_platform["linux/arm64"]["passed"]
    assert "database@linux-arm64 (emulated)" in {c["id"] for c in failed["checks"] if not c["passed"]}
    assert pipeline.digest("latest", repo=REPO) == before, "latest stays on the previous index"
    assert "signature" not in failed and "sbom" not in failed
    registry, repo, index = split(failed["image"])
    lookaside = pipeline.state / "sigstore/lookaside"
    signed_before = {e["image"] for e in report["platforms"]}
    for digest in [index, *(split(p["image"])[2] for p in failed["platforms"] if p["image"] not in signed_before)]:
        assert not (lookaside / f"{repo}@{digest.replace(':', '=')}").exists(), digest
        assert referrers.referrers(registry_client(registry, repo), digest)[1] == []


def test_kaniko_builds_each_platform_into_one_index(pipeline, green, executor, tmp_path):
    proc = pipeline.run("--no-provision", "--builder", "kaniko", "--platform", PLATFORMS, "--offline", "--repo",
                        f"{REPO}-kaniko", "--cache-repo", WARM_CACHE, "--report", str(tmp_path / "r.json"),
                        timeout=2700)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    registry, repo, digest = split(report["image"])
    listed = multiarch.platforms_of(registry_client(registry, repo).get_manifest(digest)[0])
    assert [p for p, _ in listed] == ["linux/amd64", "linux/arm64"]
    assert all(p["passed"] for p in report["platforms"])
    # the arm64 build ran under emulation (kaniko's --custom-platform), the host's natively
    assert [p["build_emulated"] for p in report["platforms"]] == [False, True]
    ok = pipeline.run("attest", "verify", report["image"])
    assert ok.returncode == 0, ok.stderr


def test_parity_on_arm64(pipeline, executor, tmp_path):
    """buildah and kaniko, both under emulation from the arm64 base, give the same tree."""
    proc = pipeline.run("parity", "--no-provision", "--platform", "linux/arm64", "--offline", "--repo",
                        f"{REPO}-parity", "--cache-repo", WARM_CACHE, "--report", str(tmp_path / "p.json"),
                        timeout=2700)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert json.loads((tmp_path / "p.json").read_text())["passed"]


def test_an_unsupported_platform_is_one_line_and_changes_nothing(pipeline):
    proc = pipeline.run("--no-provision", "--platform", "linux/amd64,linux/riscv64", "--repo", f"{REPO}-bad")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unsupported platform 'linux/riscv64': give linux/amd64 and/or linux/arm64 "
        "(e.g. --platform linux/amd64,linux/arm64)"]
    assert pipeline.digest("latest", repo=f"{REPO}-bad") is None


def test_the_arm64_stand_in_is_arm64_through(profile, multi):
    """The stand-in for arm64 is arm64 all through (its config and its interpreter)."""
    from imagepipe.image.containerfile import base_ref
    from imagepipe.image.platforms import parse

    ref = base_ref(parse("linux/arm64"))
    arch = runner.run(cmdline.podman(profile, "image", "inspect", "--format", "{{.Architecture}}", ref)).stdout
    assert arch.strip() == "arm64"
    probe = "import sysconfig; print(sysconfig.get_config_var('MULTIARCH'))"
    out = runner.run(cmdline.podman_run(profile, ref, remove=True, platform="linux/arm64",
                                         command=["python3", "-c", probe]))
    assert out.stdout.strip() == "aarch64-linux-gnu"
