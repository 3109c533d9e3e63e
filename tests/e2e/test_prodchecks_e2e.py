"""The production-path checks can fail: each runs against an image derived from ours and broken on purpose
(a file removed in a new layer), and must fail, naming what broke. On our own image they pass (the green
run in test_pipeline_e2e checks every id)."""

from __future__ import annotations

import json

import pytest

from imagepipe.exec import runner

pytestmark = pytest.mark.e2e


def broken_variant(ours: str, pipeline, tmp_path, name: str, *paths: str) -> str:
    """Our pushed image `ours` with `paths` deleted, pushed as todo-backend-broken:<name>; returns its digest ref."""
    ctr = runner.run(["buildah", "from", "--pull=false", "--tls-verify=false", "--quiet", f"docker://{ours}"],
                     timeout=300).stdout.strip()
    try:
        root = runner.run(["buildah", "mount", ctr]).stdout.strip()
        for path in paths:
            runner.run(["rm", "-rf", "--", f"{root}{path}"])
        runner.run(["buildah", "commit", "--quiet", "--format", "docker", ctr, f"localhost/todo-backend-broken:{name}"],
                   timeout=300)
    finally:
        runner.run(["buildah", "rm", ctr], ok_codes=(0, 1, 125))
    digestfile = tmp_path / "digest"
    runner.run(["buildah", "push", "--tls-verify=false", "--digestfile", str(digestfile),
                f"localhost/todo-backend-broken:{name}", f"docker://{pipeline.registry}/todo-backend-broken:{name}"],
               timeout=300)
    return f"{pipeline.registry}/todo-backend-broken@{digestfile.read_text().strip()}"


# What pruning could lose: each break stops the service from starting (the report then carries the log tail
# naming the missing piece), except that database-tls diagnoses libssl in a fresh container.
@pytest.mark.parametrize(("name", "paths", "check", "says"), [
    ("no-libssl", ["/usr/lib/x86_64-linux-gnu/libssl.so.3"], "database-tls",
     "TLS handshake failed: libssl.so.3 missing in the image"),
    ("no-ed25519", ["/opt/venv/lib/python3.11/site-packages/cryptography/hazmat/primitives/asymmetric/ed25519.pyc"],
     "auth-jwks", "ed25519"),
    ("no-agents", ["/app/agents"], "chat", "agents"),
    ("no-mcp-server", ["/app/mcp/todo_server.py"], "mcp", "todo_server"),
    # an image whose packages cannot be listed is not one without vulnerabilities
    ("no-dpkg-status", ["/var/lib/dpkg/status"], "vulnerabilities", "/var/lib/dpkg/status: No such file"),
])
def test_each_production_check_fails_on_an_image_made_to_break_it(pipeline, green, tmp_path, name, paths, check,
                                                                   says):
    ref = broken_variant(green[1]["image"], pipeline, tmp_path, name, *paths)
    proc = pipeline.run("verify", ref, "--no-provision", "--report", str(tmp_path / "r.json"))
    assert proc.returncode == 1, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    result = next(c for c in report["checks"] if c["id"] == check)
    assert result["passed"] is False
    assert says in result["detail"], result["detail"]
