"""Supply chain with the real tools (gpg, skopeo, podman, the registry, lighttpd): the promoted digest is
signed and carries a signed SBOM and provenance; `attest verify` passes on it and fails on each tampered
case; the trust policy makes podman refuse an unsigned image of the repository."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from pipeline_support import registry_client

from imagepipe.checks import imagefs
from imagepipe.checks.catalog import CHECK_IDS
from imagepipe.exec import cmdline, runner
from imagepipe.image import mount
from imagepipe.registry import oci
from imagepipe.services import sigstore
from imagepipe.supplychain import cosigning, inventory, referrers, signing, trust

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def attested(pipeline, green, tmp_path_factory):
    """A promoted image of its own repository (the tamper tests alter its attestations)."""
    out = tmp_path_factory.mktemp("attest")
    proc = pipeline.run("--no-provision", "--repo", "todo-backend-attest", "--report", str(out / "r.json"))
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "r.json").read_text()), proc


def variant(source: str, dest: str, marker: str) -> str:
    """`source` with one file added, pushed as `dest` (a different digest, never promoted); returns its digest."""
    ctr = runner.run(["buildah", "from", "--pull=false", "--tls-verify=false", "--quiet", f"docker://{source}"]).stdout.strip()
    try:
        root = runner.run(["buildah", "mount", ctr]).stdout.strip()
        Path(root, "tmp", marker).write_text(marker)
        runner.run(["buildah", "commit", "--quiet", "--format", "docker", ctr, f"localhost/imagepipe-{marker}:1"])
    finally:
        runner.run(["buildah", "rm", ctr], ok_codes=(0, 1, 125))
    digestfile = Path(tempfile.mkdtemp()) / "digest"
    runner.run(["buildah", "push", "--tls-verify=false", "--digestfile", str(digestfile),
                f"localhost/imagepipe-{marker}:1",
                f"docker://{dest}"])
    return digestfile.read_text().strip()


def attest_verify(pipeline, ref: str) -> subprocess.CompletedProcess[str]:
    return pipeline.run("attest", "verify", ref)


def blob_file(pipeline, digest: str) -> Path:
    hexd = digest.split(":", 1)[1]
    return pipeline.state / f"registry/data/docker/registry/v2/blobs/sha256/{hexd[:2]}/{hexd}/data"


def test_promoted_digest_is_signed_and_attested(pipeline, attested):
    report, proc = attested
    assert report["signature"]["signer"] and report["signature"]["tags"]
    assert report["signature"]["digest"] == report["image"].split("@")[1]
    signatures = report["signature"]["signatures"]
    assert signatures and all(v.startswith("sha256:") for v in signatures.values())
    assert report["sbom"]["digest"].startswith("sha256:") and report["provenance"]["digest"].startswith("sha256:")
    ok = attest_verify(pipeline, report["image"])
    assert ok.returncode == 0, ok.stderr
    assert "signed, SBOM and provenance attached" in ok.stdout


def test_sbom_lists_every_package_and_distribution_in_the_image(pipeline, attested):
    report, _ = attested
    registry, rest = report["image"].split("/", 1)
    repo, digest = rest.split("@")
    reg = registry_client(registry, repo)
    sbom_blob = reg.get_blob(report["sbom"]["blob"])
    components = {(c["name"], c["version"]) for c in json.loads(sbom_blob)["components"]}
    purls = [c["purl"] for c in json.loads(sbom_blob)["components"]]
    with mount.mounted(report["image"]) as root:
        dists = sorted(root.glob("opt/venv/lib/python3.11/site-packages/*.dist-info"))
        metadata = [(d / "METADATA").read_text() for d in dists]
        status = (root / "var/lib/dpkg/status").read_text()
        status_d = [p.read_text() for p in (root / "var/lib/dpkg/status.d").iterdir()]
        debs = inventory.debian_packages(root)
    # read independently of the inventory module: every stanza and every dist-info is a component
    stanzas = [s for text in [status, *status_d] for s in text.split("\n\n") if s.startswith("Package:")]
    assert len(stanzas) == len(debs) > 50
    for s in stanzas:
        fields = dict(line.split(": ", 1) for line in s.splitlines() if ": " in line and not line.startswith(" "))
        assert (fields["Package"], fields["Version"]) in components, fields["Package"]
    assert len(metadata) > 30
    for text in metadata:
        meta = dict(line.split(": ", 1) for line in text.splitlines()[:10] if ": " in line)
        assert (meta["Name"], meta["Version"]) in components, meta["Name"]
    assert any(p.startswith("pkg:deb/debian/") for p in purls) and any(p.startswith("pkg:pypi/") for p in purls)
    assert any(c[0].endswith("python:3.11-slim") for c in components), "the base image with its digest"


def test_signing_key_stays_private(pipeline, attested):
    report, proc = attested
    home = pipeline.state / "signing/gnupg"
    assert gpg_agents(pipeline.state) == [], "signing leaves no gpg-agent running"
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    keys = list((home / "private-keys-v1.d").glob("*.key"))
    assert keys and all(stat.S_IMODE(os.stat(k).st_mode) == 0o600 for k in keys)
    secret = subprocess.run(["gpg", "--batch", "--armor", "--export-secret-keys"],
                            env={**os.environ, "GNUPGHOME": str(home)},
                            capture_output=True, text=True, check=True).stdout
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": str(home)}, check=True)
    body = [ln for ln in secret.splitlines() if ln and not ln.startswith("-----") and ":" not in ln][1]
    assert body not in proc.stdout + proc.stderr and body not in json.dumps(report)
    with mount.mounted(report["image"]) as root:
        found = imagefs.scan(root, [body])
    assert not [s for s in found.secrets if "run-time secret" in s], "the key is not in the image"


def test_tampering_is_caught_and_named(pipeline, attested, tmp_path):
    report, _ = attested
    image = report["image"]
    # one byte of the SBOM changed in the registry's storage
    blob = blob_file(pipeline, report["sbom"]["blob"])
    original = blob.read_bytes()
    blob.write_bytes(original[:10] + bytes([original[10] ^ 1]) + original[11:])
    try:
        bad = attest_verify(pipeline, image)
        assert bad.returncode == 1 and "SBOM: blob does not match its digest" in bad.stderr, bad.stderr
    finally:
        blob.write_bytes(original)
    # a signature from another key in place of the pipeline's
    registry, rest = image.split("/", 1)
    repo, digest = rest.split("@")
    sigdir = pipeline.state / "sigstore/lookaside" / f"{repo}@{digest.replace(':', '=')}"
    saved = {p: p.read_bytes() for p in sigdir.glob("signature-*")}
    other = tmp_path / "other-gnupg"
    other.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(signing.short_home(other))}  # the agent's socket path fits
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "intruder@localhost", "ed25519", "sign",
                    "never"], env=env, check=True, capture_output=True)
    fpr = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=env, capture_output=True,
                         text=True, check=True).stdout.split("fpr:::::::::")[1].split(":")[0]
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(registry_client(registry, repo).get_manifest(digest)[0])
    for p in saved:
        p.unlink()
    subprocess.run(["skopeo", "standalone-sign", str(manifest), f"{registry}/{repo}:latest", fpr, "-o",
                    str(sigdir / "signature-1")], env=env, check=True, capture_output=True)
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=True)  # the test leaves no daemon
    try:
        bad = attest_verify(pipeline, image)
        assert bad.returncode == 1 and f"image {digest}: signature does not verify" in bad.stderr, bad.stderr
    finally:
        for p, data in saved.items():
            p.write_bytes(data)
    # the attestations re-tagged onto another digest of the repository
    other_digest = variant(image, f"{registry}/{repo}:other", "other-image")
    reg = registry_client(registry, repo)
    index = referrers.tag_index(reg, digest)
    moved = f"{registry}/{repo}@{other_digest}"
    reg.put_manifest(referrers.tag_for(other_digest), json.dumps(index).encode(), oci.OCI_INDEX)
    bad = attest_verify(pipeline, moved)
    assert bad.returncode == 1
    assert f"SBOM: its subject is {digest}, not this image ({other_digest})" in bad.stderr, bad.stderr
    assert attest_verify(pipeline, image).returncode == 0, "the original is intact again"


def test_trust_policy_refuses_unsigned_and_accepts_signed(pipeline, attested, tmp_path):
    report, _ = attested
    registry, rest = report["image"].split("/", 1)
    repo = rest.split("@")[0]
    scope = f"{registry}/{repo}"
    # an unsigned image in the same repository: the variant with a marker file, pushed without promote
    unsigned = f"{registry}/{repo}:unsigned"
    variant(report["image"], unsigned, "unsigned-marker")

    written = pipeline.run("trust", "--repo", repo)
    assert written.returncode == 0, written.stderr
    policy = pipeline.state / "trust/policy.json"
    regd = pipeline.state / "trust/registries.d"
    skopeo = ["skopeo", "--policy", str(policy), "--registries.d", str(regd), "copy", "--src-tls-verify=false"]
    refused = subprocess.run([*skopeo, f"docker://{unsigned}", f"dir:{tmp_path / 'u'}"], capture_output=True, text=True)
    assert refused.returncode != 0 and "signature" in refused.stderr.lower(), refused.stderr
    accepted = subprocess.run([*skopeo, f"docker://{scope}:latest", f"dir:{tmp_path / 's'}"], capture_output=True,
                              text=True)
    assert accepted.returncode == 0, accepted.stderr

    installed = pipeline.run("trust", "--repo", repo, "--install")
    assert installed.returncode == 0, installed.stderr
    try:
        from imagepipe.exec import cmdline
        from imagepipe.host import quirks

        profile = quirks.detect()
        pull = cmdline.podman(profile, "pull", "--tls-verify=false")
        no = subprocess.run([*pull, unsigned], capture_output=True, text=True)
        assert no.returncode != 0 and "signature" in no.stderr.lower(), no.stderr
        yes = subprocess.run([*pull, f"{scope}:latest"], capture_output=True, text=True)
        assert yes.returncode == 0, yes.stderr
        ran = runner.run(cmdline.podman_run(profile, f"{scope}:latest", remove=True, entrypoint="",
                                             command=["python", "-c", "print('signed image runs')"]))
        assert "signed image runs" in ran.stdout
    finally:
        trust.uninstall(scope)


def gpg_agents(state) -> list[str]:
    """gpg-agents serving a GNUPGHOME of this state directory (directly, or through a short alias to it)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["name", "cmdline", "environ"]):
        if proc.info["name"] != "gpg-agent":
            continue
        cmd = " ".join(proc.info["cmdline"] or [])
        homes = [w for w in cmd.split() if "gnupg" in w] + [(proc.info["environ"] or {}).get("GNUPGHOME", "")]
        if any(h and os.path.realpath(h).startswith(str(state)) for h in homes):
            found.append(cmd)
    return found


def cosign_run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def test_cosign_verifies_the_promoted_digest_and_each_of_its_attestations(pipeline, attested, tmp_path):
    """The real cosign against the registry: the promoted digest is signed by the pipeline's key, and each
    predicate type is there, signed by it, about this digest; the verification attestation records every
    check of this run, each passed, where it ran and against which contract."""
    report, _ = attested
    image, digest = report["image"], report["image"].split("@")[1]
    public = pipeline.state / "cosign/cosign.pub"
    assert report["cosign"]["public_key"] == str(public) and report["cosign"]["signed"] == [digest]
    assert report["cosign"]["tlog"] is False
    binary, root = sigstore.cosign(), cosigning.trusted_root(tmp_path)
    signed = cosign_run(cmdline.cosign_verify(binary, public, image, trusted_root=root))
    assert signed.returncode == 0, signed.stderr
    assert [p["critical"]["image"]["docker-manifest-digest"] for p in json.loads(signed.stdout)] == [digest]
    found = {}
    for predicate_type in cosigning.PREDICATE_TYPES:
        got = cosign_run(cmdline.cosign_verify_attestation(binary, public, image, predicate_type=predicate_type,
                                                           trusted_root=root))
        assert got.returncode == 0, got.stderr
        (statement,) = [cosigning.statement(line) for line in got.stdout.splitlines() if line.strip()]
        assert statement["predicateType"] == predicate_type
        assert [s["digest"]["sha256"] for s in statement["subject"]] == [digest.split(":", 1)[1]]
        found[predicate_type] = statement["predicate"]
    assert found[cosigning.SBOM_TYPE]["bomFormat"] == "CycloneDX" and found[cosigning.SBOM_TYPE]["components"]
    assert found[cosigning.PROVENANCE_TYPE]["buildDefinition"]["buildType"]
    proof = found[cosigning.VERIFICATION_TYPE]
    assert proof["image"]["digest"] == digest and proof["passed"] is True
    assert [(c["id"], c["result"], c["where"]) for c in proof["checks"]] == [(i, "pass", "host") for i in CHECK_IDS]
    assert [(c["id"], c["value"]) for c in proof["checks"]] == [(c["id"], c["value"]) for c in report["checks"]]
    assert proof["contract"] == {"name": "backend-dockerfile.contract.md", "version": "1.0.0", "date": "2026-01-18"}
    assert proof["advisories"]["source"].startswith("OSV database ") and proof["advisories"]["asOf"]
    assert proof["durationSeconds"] > 0


def test_cosign_refuses_an_unsigned_image_another_key_and_an_attestation_moved_to_another_digest(
        pipeline, attested, tmp_path):
    report, _ = attested
    image, digest = report["image"], report["image"].split("@")[1]
    registry, rest = image.split("/", 1)
    repo = rest.split("@")[0]
    binary, root = sigstore.cosign(), cosigning.trusted_root(tmp_path)
    public = pipeline.state / "cosign/cosign.pub"
    # an image in the same repository that promote never saw
    marker = f"cosign-unsigned-{os.urandom(4).hex()}"
    other_digest = variant(image, f"{registry}/{repo}:{marker}", marker)
    other = f"{registry}/{repo}@{other_digest}"
    unsigned = cosign_run(cmdline.cosign_verify(binary, public, other, trusted_root=root))
    assert unsigned.returncode != 0 and "no signatures found" in unsigned.stderr, unsigned.stderr
    # the promoted digest, checked with a key that did not sign it
    (tmp_path / "other").mkdir()
    runner.run(cmdline.cosign_generate_key_pair(binary, tmp_path / "other"), env=cmdline.cosign_env(password=""))
    _, other_public = cmdline.cosign_key_pair(tmp_path / "other")
    wrong = cosign_run(cmdline.cosign_verify(binary, other_public, image, trusted_root=root))
    assert wrong.returncode != 0 and "no matching signatures" in wrong.stderr, wrong.stderr
    # the promoted digest's attestations, copied whole to where cosign looks for the other image's: each is
    # signed by our key, but about another digest
    att = f"sha256-{digest.split(':', 1)[1]}.att"
    moved = f"sha256-{other_digest.split(':', 1)[1]}.att"
    runner.run(["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
                f"docker://{registry}/{repo}:{att}", f"docker://{registry}/{repo}:{moved}"])
    refused = cosign_run(cmdline.cosign_verify_attestation(binary, public, other, trusted_root=root,
                                                           predicate_type=cosigning.VERIFICATION_TYPE))
    assert refused.returncode != 0, refused.stdout
    assert "no matching attestations" in refused.stderr and "no matching subject digest found" in refused.stderr, \
        refused.stderr
