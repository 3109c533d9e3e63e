"""The pipeline end to end with the real tools: buildah, podman, skopeo, docker-registry, PostgreSQL.

Each test runs `python build/pipeline.py` as a user would, against its own state directory and an embedded
registry on a free port (stopped at the end).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pipeline_support import registry_client

from imagepipe.builders import wheels
from imagepipe.checks.verifier import CHECK_IDS
from imagepipe.image.platforms import host
from imagepipe.paths import MACHINE_CACHE
from imagepipe.supplychain import referrers

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def failed(report: dict) -> list[str]:
    return [c["id"] for c in report["checks"] if not c["passed"]]


def test_full_pipeline_is_green_and_promotes_the_verified_digest(pipeline, green):
    proc, report, junit = green
    assert proc.returncode == 0, proc.stderr
    for stage in ("base", "lint", "build", "push", "verify", "promote"):
        assert f"==> {stage}:" in proc.stdout and f"{stage} done in" in proc.stdout
    assert report["passed"] is True and report["builder"] == "buildah"
    assert [c["id"] for c in report["checks"]] == list(CHECK_IDS)
    assert report["image"].startswith(f"{pipeline.registry}/todo-backend@sha256:")
    assert pipeline.digest("latest") == report["image"].split("@")[1]
    assert 'failures="0"' in junit
    # the size check reports the image's own size (what podman says of the pulled digest), not a guess
    size = next(c for c in report["checks"] if c["id"] == "size")
    inspected = subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", report["image"]],
                               capture_output=True, text=True, check=True).stdout
    assert size["value"] == round(int(inspected) / 1e6, 1) and size["limit"] == 150
    assert "HTTP Request:" not in proc.stdout + proc.stderr, "no library's request log between the check lines"


def test_tiny_size_budget_fails_exactly_size(pipeline, green, tmp_path):
    proc = pipeline.run("verify", green[1]["image"], "--max-size", "10", "--report", str(tmp_path / "r.json"))
    assert proc.returncode == 1, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert failed(report) == ["size"]
    assert next(c for c in report["checks"] if c["id"] == "size")["limit"] == 10


def test_an_image_that_needs_a_fourth_variable_fails_contract_validation_and_latest_stays(pipeline, green, tmp_path):
    """The regression the contract's own Validation caught: a setting verify passes (FRONTEND_URL) made
    required. verify's service has it, so only contract-validation, with the contract's three variables
    alone, sees the container exit; the whole run promotes nothing."""
    before = pipeline.digest("latest")
    ctx = tmp_path / "backend"
    shutil.copytree(ROOT / "backend", ctx, ignore=shutil.ignore_patterns("__pycache__"))
    config = ctx / "app/core/config.py"
    optional = "    FRONTEND_URL: str | None = None\n"
    assert optional in config.read_text()
    config.write_text(config.read_text().replace(optional, "    FRONTEND_URL: str = Field(min_length=1)\n"))
    proc = pipeline.run("--no-provision", "--context", str(ctx), "--report", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text())
    assert proc.returncode == 1, proc.stderr
    assert failed(report) == ["contract-validation"]
    check = next(c for c in report["checks"] if c["id"] == "contract-validation")
    assert check["detail"] == ("with only the contract's three variables the container exited 2 before /health "
                               "answered: configuration error: missing required environment variables: FRONTEND_URL "
                               "(set them in the environment or in .env)")
    assert report["image"].split("@")[1] != before, "the variant is a different image"
    assert pipeline.digest("latest") == before, "a failed verification never moves latest"
    assert "latest was not moved" in proc.stdout
    # nor signs or attests anything (was test_supply_chain_e2e's own failing run)
    registry, rest = report["image"].split("/", 1)
    repo, digest = rest.split("@")
    assert not (pipeline.state / "sigstore/lookaside" / f"{repo}@{digest.replace(':', '=')}").exists()
    assert referrers.referrers(registry_client(registry, repo), digest)[1] == []
    assert "signature" not in report and "sbom" not in report and "cosign" not in report
    hexd = digest.split(":", 1)[1]
    tags = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{registry}/{repo}"],
                          capture_output=True, text=True, check=True).stdout
    assert f"sha256-{hexd}.sig" not in tags and f"sha256-{hexd}.att" not in tags, "no cosign signature or attestation"


def test_root_variant_fails_exactly_user_contract_validation_and_hardened(pipeline, green, tmp_path):
    variant = tmp_path / "Containerfile"
    variant.write_text((ROOT / "build/Containerfile").read_text().replace("USER appuser", "USER root"))
    assert pipeline.run("lint", "--containerfile", str(variant)).returncode == 12  # lint catches it statically
    args = ("--containerfile", str(variant), "--repo", "todo-backend-root")
    assert pipeline.run("build", *args).returncode == 0
    pushed = pipeline.run("push", *args)
    assert pushed.returncode == 0
    image = json.loads((pipeline.state / "last-push.json").read_text())["image"]
    proc = pipeline.run("verify", image, "--report", str(tmp_path / "r.json"))
    assert proc.returncode == 1
    # hardened looks inside the running container: its service process is root there, so it fails too; and
    # the contract's own `docker run --rm IMAGE whoami` says root
    report = json.loads((tmp_path / "r.json").read_text())
    assert failed(report) == ["user", "contract-validation", "hardened"]
    check = next(c for c in report["checks"] if c["id"] == "contract-validation")
    assert check["detail"] == "whoami: 'root' (expected 'appuser')", check["detail"]


@pytest.mark.parametrize(("args", "code", "message"), [
    (("build", "--context", "/nonexistent"), 2, "build context not found: /nonexistent"),
    (("build", "--containerfile", "/nonexistent"), 2, "Containerfile not found"),
    (("--repo", "Bad Name"), 2, "invalid repository name"),
    (("--tag=bad:tag",), 2, "invalid tag"),
    (("verify",), 2, "verify takes one image"),
])
def test_bad_input_one_line_and_exit_code(pipeline, args, code, message):
    proc = pipeline.run(*args)
    assert proc.returncode == code
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, "one line"


def test_context_without_mcp_is_refused(pipeline, tmp_path):
    ctx = tmp_path / "ctx"
    shutil.copytree(ROOT / "backend", ctx, ignore=shutil.ignore_patterns("__pycache__", "mcp"))
    proc = pipeline.run("build", "--context", str(ctx))
    assert proc.returncode == 2 and "lacks mcp/" in proc.stderr


def test_provision_is_idempotent(pipeline):
    first = pipeline.run("provision")
    assert first.returncode == 0, first.stderr
    second = pipeline.run("provision")
    assert second.returncode == 0 and "no changes" in second.stdout


def test_offline_build_uses_only_the_wheelhouse(pipeline, green, tmp_path):
    """--offline mounts the machine's wheelhouse and no CA bundle: pip cannot reach PyPI from inside the
    build, so a green build proves no Python package came from the network. The step before the venv's
    (the pruner's COPY) is changed, so the venv step runs here rather than coming from the layer cache."""
    ctx = tmp_path / "backend"
    shutil.copytree(ROOT / "backend", ctx, ignore=shutil.ignore_patterns("__pycache__"))
    with (ctx / "imagebuild/prune_rootfs.py").open("a") as f:
        f.write(f"# {os.urandom(8).hex()}: a new layer under the venv step, never in the cache\n")
    proc = pipeline.run("build", "--offline", "-v", "--context", str(ctx), "--repo", "todo-backend-offline")
    assert proc.returncode == 0, proc.stderr
    house = wheels.place(ctx / "requirements.txt", host())
    assert house.parent == MACHINE_CACHE / "wheelhouse" and list(house.glob("psycopg_c-*.whl"))
    # -v echoes the tools' output on stderr: the venv step's own first line, which a cached step never prints
    assert f"python packages from: {house.name}" in proc.stderr, "the venv step ran, installing from it"
