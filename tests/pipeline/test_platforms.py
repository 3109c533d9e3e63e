"""--platform, and what each platform changes in the cmdline, the Job and the index (no binaries)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagepipe.builders import kanikojob
from imagepipe.checks.types import Check, VerifyResult
from imagepipe.cli.arguments import parse_args
from imagepipe.errors import UsageError
from imagepipe.exec import cmdline
from imagepipe.host import git
from imagepipe.host.profile import HostProfile
from imagepipe.image import platforms
from imagepipe.image.containerfile import BASE_REF, base_ref
from imagepipe.image.platforms import Platform
from imagepipe.image.refs import ImageRef
from imagepipe.pipeline import multiarch
from imagepipe.pipeline.options import from_namespace
from imagepipe.pipeline.stages import build
from imagepipe.pipeline.stages.incluster import placement

AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64")
HOST = platforms.host()
OTHER = ARM64 if HOST == AMD64 else AMD64
PLAIN = HostProfile(hybrid_cgroups=False, nofile_hard=1 << 20, nproc_hard=1 << 22)


def test_parse_lists_in_order_without_repeats():
    assert platforms.parse_list(["linux/arm64,linux/amd64", "linux/arm64"]) == (ARM64, AMD64)
    assert platforms.parse_list([]) == (HOST,)
    assert ARM64.machine == "aarch64" and AMD64.machine == "x86_64" and ARM64.slug == "linux-arm64"


@pytest.mark.parametrize("bad", ["linux/s390x", "windows/amd64", "arm64", "linux/arm64/v8"])
def test_an_unsupported_platform_is_one_line_naming_the_fix(bad):
    with pytest.raises(UsageError, match=r"unsupported platform .*--platform linux/amd64,linux/arm64"):
        platforms.parse_list([bad])


def test_the_option_reaches_the_run_and_bad_input_changes_nothing():
    opts = from_namespace(parse_args(["all", "--platform", "linux/amd64,linux/arm64"]))
    assert opts.platforms == (AMD64, ARM64)
    assert from_namespace(parse_args(["verify", "--platform=linux/arm64", "r/x@sha256:" + "0" * 64])).platforms == (
        ARM64,)
    with pytest.raises(UsageError):
        from_namespace(parse_args(["build", "--platform", "linux/mips"]))


def test_the_host_keeps_the_literal_base_another_platform_its_own_name():
    assert base_ref(HOST) == BASE_REF
    assert base_ref(OTHER) == f"localhost/imagepipe/python:3.11-slim-{OTHER.slug}"


def test_tags_per_platform():
    assert git.platform_tag("abc", HOST, multi=False) == "abc"
    assert git.platform_tag("abc", OTHER, multi=False) == f"abc-{OTHER.slug}"
    assert git.platform_tag("abc", HOST, multi=True) == f"abc-{HOST.slug}"


def test_buildah_builds_another_platform_from_its_base_and_the_host_as_before(tmp_path):
    kw = dict(containerfile=Path("C"), context=Path("ctx"), image="localhost/x:1", wheelhouse=None, timestamp=0)
    native = build.build_argv(PLAIN, platform=HOST, **kw)
    assert native == build.build_argv(PLAIN, **kw)  # same layers as a single-platform build
    assert "--platform" not in native and "--from" not in native
    foreign = build.build_argv(PLAIN, platform=OTHER, **kw)
    assert foreign[foreign.index("--platform") + 1] == str(OTHER)
    assert foreign[foreign.index("--from") + 1] == base_ref(OTHER)
    assert foreign[-3:] == ["-f", "C", "ctx"]  # the same Containerfile


def test_standin_and_run_commands_name_the_architecture(tmp_path):
    assert cmdline.debootstrap(tmp_path, "http://m", arch="arm64")[:3] == [
        "debootstrap", "--variant=minbase", "--arch=arm64"]
    assert cmdline.podman_import(PLAIN, tmp_path / "t.tar", "r:1", arch="arm64")[:4] == [
        "podman", "import", "--arch", "arm64"]
    run = cmdline.podman_run(PLAIN, "img", platform="linux/arm64", command=["uname", "-m"])
    assert run[-5:] == ["--platform", "linux/arm64", "img", "uname", "-m"]
    assert "--all" in cmdline.skopeo_copy("a/b@sha256:1", "a/b:latest", all_images=True)
    assert "--all" not in cmdline.skopeo_copy("a/b@sha256:1", "a/b:latest")


SETTINGS = kanikojob.ClusterSettings(
    name="j", labels={}, git_url="https://g.example/a.git", commit="0" * 40, destination="r.example/x:1",
    cache_repo="r.example/x/cache", registry_secret="s")


@pytest.mark.parametrize("nodes, platform, expected", [
    ({"amd64", "arm64"}, ARM64, ("arm64", None)),  # a node of its own: native
    ({"amd64"}, ARM64, ("amd64", "linux/arm64")),  # one architecture: emulated there
    ({"amd64"}, AMD64, ("amd64", None)),
    (set(), ARM64, (None, "linux/arm64")),  # nodes not listable: anywhere, kaniko told the platform
])
def test_a_job_per_platform_goes_where_it_can_run(nodes, platform, expected):
    assert placement(nodes, platform) == expected


def test_the_job_carries_the_selector_and_the_custom_platform():
    job = kanikojob.job_for(kanikojob.load(), kanikojob.ClusterSettings(
        **{**SETTINGS.__dict__, "node_arch": "amd64", "custom_platform": "linux/arm64"}))
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert kanikojob.executor_args(job)[-1] == "--custom-platform=linux/arm64"
    plain = kanikojob.job_for(kanikojob.load(), SETTINGS)
    assert "nodeSelector" not in plain["spec"]["template"]["spec"]
    assert not any(a.startswith("--custom-platform") for a in kanikojob.executor_args(plain))


def test_the_index_is_a_docker_manifest_list_with_each_platform():
    v2s2 = "application/vnd.docker.distribution.manifest.v2+json"
    entries = [multiarch.Entry(AMD64, v2s2, 1000, "sha256:" + "a" * 64),
               multiarch.Entry(ARM64, v2s2, 1001, "sha256:" + "b" * 64)]
    doc = multiarch.index_document(entries)
    # the exact bytes: the entries in --platform order and nothing else (no annotation, no time), so one set of
    # images is one index digest
    assert doc == b"""{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
   "manifests": [
      {
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "size": 1000,
         "digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "platform": {
            "architecture": "amd64",
            "os": "linux"
         }
      },
      {
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "size": 1001,
         "digest": "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
         "platform": {
            "architecture": "arm64",
            "os": "linux"
         }
      }
   ]
}"""
    parsed = json.loads(doc)
    assert parsed["mediaType"] == multiarch.LIST_TYPE and parsed["schemaVersion"] == 2
    assert multiarch.platforms_of(doc) == [("linux/amd64", "sha256:" + "a" * 64), ("linux/arm64", "sha256:" + "b" * 64)]
    assert [m["size"] for m in parsed["manifests"]] == [1000, 1001]


def test_the_combined_result_names_each_platform_and_fails_with_any():
    ok = VerifyResult("x@1", checks=[Check("size", True)])
    bad = VerifyResult("x@2", checks=[Check("size", False)], emulated=True)
    index = ImageRef.parse("r.example/x@sha256:" + "c" * 64)
    from imagepipe.image.refs import PushedImage

    result = multiarch.combined(PushedImage(index), [(AMD64, ok), (ARM64, bad)])
    assert [c.id for c in result.checks] == ["size@linux-amd64", "size@linux-arm64 (emulated)"]
    assert not result.passed
    assert multiarch.combined(PushedImage(index), [(AMD64, ok)]).passed


def test_each_platform_s_documents_name_it_and_attest_reads_it_back():
    from imagepipe.supplychain import attest, provenance, sbom

    digest = "sha256:" + "d" * 64
    bom = json.loads(sbom.build(image="r.example/x", digest=digest, base_ref=BASE_REF, base_digest=None, debs=[],
                                dists=[], platform="linux/arm64"))
    assert attest.named_platform("SBOM", bom) == "linux/arm64"
    assert "arch=arm64" in bom["metadata"]["component"]["purl"]
    facts = provenance.BuildFacts(
        image="r.example/x", digest=digest, containerfile="C", context="ctx", source_uri="git+https://g/a",
        commit="0" * 40, builder="buildah", builder_version="1", base_ref=BASE_REF, base_digest=None,
        requirements={}, invocation="r1", started=0.0, finished=1.0, platform="linux/arm64", emulated=True)
    statement = json.loads(provenance.statement(facts))
    assert attest.named_platform("provenance", statement) == "linux/arm64"
    assert statement["predicate"]["buildDefinition"]["internalParameters"] == {"emulated": True}
    single = json.loads(sbom.build(image="r.example/x", digest=digest, base_ref=BASE_REF, base_digest=None, debs=[],
                                   dists=[]))
    assert attest.named_platform("SBOM", single) is None


def test_bench_marks_emulated_rows_and_holds_them_to_the_contract():
    from imagepipe.benchmark.figures import render_details
    from imagepipe.benchmark.platformbench import platform_metrics

    row = {"platform": "linux/arm64", "emulated": True, "cold_build_s": 100.0, "wheelhouse_s": 300.0,
           "rebuild_s": 4.0, "size_mb": 111.0, "start_s": 5.5, "pieces_s": {"apt-update": 3.0, "compileall": 20.0},
           "size_by_dir_mb": {"/opt/venv": 42.5}, "steps": []}
    metrics = platform_metrics([row], {"cold_build_s": 20.0, "rebuild_s": 4.0, "size_mb": 101.5, "start_s": 0.7})
    assert [m.name for m in metrics] == [f"linux/arm64 (emulated): {n}" for n in (
        "cold build", "code-only rebuild", "image size", "start -> first 200")]
    size, start = metrics[2], metrics[3]
    assert size.met is False and start.met is True and "contract" in start.target
    assert "compileall 20 s" in metrics[0].note
    text = render_details({"platforms": {"linux/arm64": row}})
    assert "linux/arm64: size by directory (MB): /opt/venv 42.5" in text
