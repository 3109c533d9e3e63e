"""cosign's argv and environment: pure, no binary."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagepipe.exec import cmdline

COSIGN = Path("/cache/sigstore/cosign")
REF = "127.0.0.1:5000/todo@sha256:" + "ab" * 32
KEY, PUB = Path("/keys/cosign.key"), Path("/keys/cosign.pub")
TYPE = "https://imagepipe.local/attestations/verify/v1"
PLAIN = cmdline.CosignRegistry(tls_verify=False)
TRUSTED = cmdline.CosignRegistry(docker_config=Path("/run/docker"), ca_bundle=Path("/run/tls/ca.pem"))


@pytest.mark.parametrize(("argv", "expected"), [
    (cmdline.cosign_generate_key_pair(COSIGN, Path("/keys")),
     ["/cache/sigstore/cosign", "generate-key-pair", "--output-key-prefix", "/keys/cosign"]),
    (cmdline.cosign_generate_key_pair(COSIGN, Path("/keys"), prefix="team-a"),
     ["/cache/sigstore/cosign", "generate-key-pair", "--output-key-prefix", "/keys/team-a"]),
    (cmdline.cosign_public_key(COSIGN, KEY), ["/cache/sigstore/cosign", "public-key", "--key", "/keys/cosign.key"]),
    (cmdline.cosign_public_key(COSIGN, KEY, outfile=Path("/o.pub")),
     ["/cache/sigstore/cosign", "public-key", "--key", "/keys/cosign.key", "--outfile", "/o.pub"]),
    (cmdline.cosign_sign(COSIGN, KEY, REF),
     ["/cache/sigstore/cosign", "sign", "--key", "/keys/cosign.key", "--tlog-upload=false", "--yes", REF]),
    (cmdline.cosign_sign(COSIGN, KEY, REF, registry=PLAIN),
     ["/cache/sigstore/cosign", "sign", "--key", "/keys/cosign.key", "--tlog-upload=false", "--yes",
      "--allow-insecure-registry", "--allow-http-registry", REF]),
    (cmdline.cosign_attest(COSIGN, KEY, REF, predicate_type=TYPE, predicate=Path("/p.json")),
     ["/cache/sigstore/cosign", "attest", "--key", "/keys/cosign.key", "--type", TYPE, "--predicate", "/p.json",
      "--tlog-upload=false", "--yes", REF]),
    (cmdline.cosign_attest(COSIGN, KEY, REF, predicate_type="slsaprovenance1", predicate=Path("/p.json"),
                           registry=TRUSTED),
     ["/cache/sigstore/cosign", "attest", "--key", "/keys/cosign.key", "--type", "slsaprovenance1", "--predicate",
      "/p.json", "--tlog-upload=false", "--yes", "--registry-cacert", "/run/tls/ca.pem", REF]),
    (cmdline.cosign_verify(COSIGN, PUB, REF),
     ["/cache/sigstore/cosign", "verify", "--key", "/keys/cosign.pub", "--insecure-ignore-tlog=true", REF]),
    (cmdline.cosign_verify(COSIGN, PUB, REF, registry=PLAIN),
     ["/cache/sigstore/cosign", "verify", "--key", "/keys/cosign.pub", "--insecure-ignore-tlog=true",
      "--allow-insecure-registry", "--allow-http-registry", REF]),
    (cmdline.cosign_verify_attestation(COSIGN, PUB, REF, predicate_type=TYPE),
     ["/cache/sigstore/cosign", "verify-attestation", "--key", "/keys/cosign.pub", "--type", TYPE,
      "--insecure-ignore-tlog=true", REF]),
    (cmdline.cosign_verify_attestation(COSIGN, PUB, REF, predicate_type=TYPE, registry=TRUSTED),
     ["/cache/sigstore/cosign", "verify-attestation", "--key", "/keys/cosign.pub", "--type", TYPE,
      "--insecure-ignore-tlog=true", "--registry-cacert", "/run/tls/ca.pem", REF]),
    (cmdline.cosign_verify(COSIGN, PUB, REF, trusted_root=Path("/s/trusted-root.json")),
     ["/cache/sigstore/cosign", "verify", "--key", "/keys/cosign.pub", "--insecure-ignore-tlog=true",
      "--trusted-root", "/s/trusted-root.json", REF]),
    (cmdline.cosign_verify_attestation(COSIGN, PUB, REF, predicate_type=TYPE, trusted_root=Path("/s/t.json")),
     ["/cache/sigstore/cosign", "verify-attestation", "--key", "/keys/cosign.pub", "--type", TYPE,
      "--insecure-ignore-tlog=true", "--trusted-root", "/s/t.json", REF]),
    (cmdline.cosign_copy(COSIGN, REF, "10.244.0.1:5000/todo-copy:latest", registry=PLAIN),
     ["/cache/sigstore/cosign", "copy", "--allow-insecure-registry", "--allow-http-registry", REF,
      "10.244.0.1:5000/todo-copy:latest"]),
    (cmdline.cosign_sign(COSIGN, "k8s://imagepipe-ci/cosign-key", REF),
     ["/cache/sigstore/cosign", "sign", "--key", "k8s://imagepipe-ci/cosign-key", "--tlog-upload=false", "--yes",
      REF]),
])
def test_cosign_argv(argv, expected):
    assert argv == expected


@pytest.mark.parametrize(("kw", "expected"), [
    ({}, {}),
    ({"password": ""}, {"COSIGN_PASSWORD": ""}),  # an empty password is one, not a prompt
    ({"registry": PLAIN, "password": "pw"}, {"COSIGN_PASSWORD": "pw"}),
    ({"registry": TRUSTED}, {"DOCKER_CONFIG": "/run/docker"}),
])
def test_cosign_env_carries_the_secrets_argv_never_does(kw, expected):
    assert cmdline.cosign_env(**kw) == expected


def test_no_password_or_credential_is_ever_in_argv():
    argvs = [cmdline.cosign_sign(COSIGN, KEY, REF, registry=TRUSTED),
             cmdline.cosign_attest(COSIGN, KEY, REF, predicate_type=TYPE, predicate=Path("/p"), registry=TRUSTED),
             cmdline.cosign_verify(COSIGN, PUB, REF, registry=TRUSTED)]
    assert not any(a.startswith(("--registry-password", "--registry-username", "--registry-token"))
                   for argv in argvs for a in argv)


@pytest.mark.parametrize("ref", ["127.0.0.1:5000/todo:1", "127.0.0.1:5000/todo", "todo@sha512:ab"])
def test_images_are_signed_and_verified_by_digest_only(ref):
    for build in (lambda: cmdline.cosign_sign(COSIGN, KEY, ref), lambda: cmdline.cosign_verify(COSIGN, PUB, ref),
                  lambda: cmdline.cosign_attest(COSIGN, KEY, ref, predicate_type=TYPE, predicate=Path("/p")),
                  lambda: cmdline.cosign_verify_attestation(COSIGN, PUB, ref, predicate_type=TYPE),
                  lambda: cmdline.cosign_copy(COSIGN, ref, "10.244.0.1:5000/todo-copy:latest")):
        with pytest.raises(ValueError, match="by digest"):
            build()


def test_key_pair_paths_are_where_generate_key_pair_writes_them():
    assert cmdline.cosign_key_pair(Path("/keys")) == (KEY, PUB)
    prefix = cmdline.cosign_generate_key_pair(COSIGN, Path("/keys"), prefix="t")[-1]
    assert (Path(prefix + ".key"), Path(prefix + ".pub")) == cmdline.cosign_key_pair(Path("/keys"), prefix="t")
