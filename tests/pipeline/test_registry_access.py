"""The run's registry access, without a registry: where credentials come from, how they are written,
what the token client asks for, and what a command line may show."""

import base64
import json
import stat
from pathlib import Path

import pytest

from imagepipe.cli.main import scrub_password
from imagepipe.errors import UsageError
from imagepipe.registry import access, protocol
from imagepipe.registry.auth import PASSWORD_ENV, RegistryAuth, entry_for, resolve, write_private


def authfile(path: Path, key: str, user: str, password: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {key: {"auth": token}}}))
    return path


@pytest.fixture
def homes(tmp_path):
    """Every source in place, each with a different user, so the winner shows which was read."""
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run"), "REGISTRY_AUTH_FILE": str(tmp_path / "env.json")}
    authfile(tmp_path / "run/containers/auth.json", "reg.example.com:5000", "podman", "p1")
    authfile(tmp_path / "env.json", "reg.example.com:5000", "envfile", "p2")
    authfile(tmp_path / "home/.docker/config.json", "https://reg.example.com:5000", "docker", "p3")
    authfile(tmp_path / "given.json", "reg.example.com:5000", "given", "p4")
    return tmp_path, env


def test_sources_in_the_order_users_expect(homes):
    root, env = homes
    reg = "reg.example.com:5000"

    def who(**kw):
        return resolve(reg, environ=env, home=root / "home", **{"creds": None, "authfile": None, **kw})

    assert who(creds="cli:pw").username == "cli"
    assert who(authfile=root / "given.json").username == "given"
    assert who().username == "envfile"
    del env["REGISTRY_AUTH_FILE"]
    assert who().username == "podman"
    (root / "run/containers/auth.json").unlink()
    got = who()
    assert (got.username, got.password, got.source) == ("docker", "p3", "~/.docker/config.json")
    (root / "home/.docker/config.json").unlink()
    assert who().anonymous


def test_a_named_auth_file_is_the_only_one_read(homes):
    root, env = homes
    authfile(root / "other.json", "elsewhere.example.com", "x", "y")
    assert resolve("reg.example.com:5000", creds=None, authfile=root / "other.json", environ=env,
                   home=root / "home").anonymous


def test_password_from_the_environment_keeps_it_out_of_argv():
    got = resolve("r.example.com", creds="ci", authfile=None, environ={PASSWORD_ENV: "s3cret"})
    assert (got.username, got.password) == ("ci", "s3cret")
    with pytest.raises(UsageError, match=PASSWORD_ENV):
        resolve("r.example.com", creds="ci", authfile=None, environ={})


def test_missing_auth_file_is_bad_input(tmp_path):
    with pytest.raises(UsageError, match="podman login --authfile"):
        resolve("r.example.com", creds=None, authfile=tmp_path / "nope.json", environ={})


def test_the_most_specific_namespace_entry_wins():
    doc = {"auths": {"r.example.com": {"auth": base64.b64encode(b"a:1").decode()},
                     "r.example.com/team": {"auth": base64.b64encode(b"b:2").decode()}}}
    assert entry_for(doc, "r.example.com", "team/app") == ("b", "2")
    assert entry_for(doc, "r.example.com", "other") == ("a", "1")
    assert entry_for(doc, "x.example.com", "team/app") is None


def test_the_password_is_in_no_repr_and_the_file_is_0600(tmp_path):
    auth = RegistryAuth("r.example.com", "ci", "s3cret-pass", "--creds")
    assert "s3cret-pass" not in repr(auth)
    path = write_private(auth, tmp_path / "d" / "auth.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert entry_for(json.loads(path.read_text()), "r.example.com") == ("ci", "s3cret-pass")


def test_scrubbed_command_line():
    assert scrub_password(["p", "--creds", "ci:pw", "--repo", "a:b"]) == ["p", "--creds", "ci:***", "--repo", "a:b"]
    assert scrub_password(["p", "--creds=ci:pw"]) == ["p", "--creds=ci:***"]


@pytest.mark.parametrize(("method", "url", "scope"), [
    ("GET", "https://r/v2/team/app/manifests/latest", "repository:team/app:pull"),
    ("HEAD", "https://r/v2/app/blobs/sha256:ab", "repository:app:pull"),
    ("POST", "https://r/v2/app/blobs/uploads/", "repository:app:pull,push"),
    ("PUT", "https://r/v2/app/manifests/sha256:ab", "repository:app:pull,push"),
    ("GET", "https://r/v2/app/referrers/sha256:ab", "repository:app:pull"),
    ("GET", "https://r/v2/", None),
])
def test_token_scope_per_request(method, url, scope):
    assert protocol.scope_for(method, url) == scope


def test_challenge_parsing():
    kind, params = protocol.parse_challenge(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:app:pull,push",error="insufficient_scope"')
    assert kind == "bearer"
    assert params == {"realm": "https://auth.example.com/token", "service": "registry.example.com",
                      "scope": "repository:app:pull,push", "error": "insufficient_scope"}


def test_certs_d_cas_join_the_system_bundle(tmp_path, monkeypatch):
    system = tmp_path / "system.pem"
    system.write_text("-----BEGIN CERTIFICATE-----\nSYSTEM\n")
    monkeypatch.setattr(access, "SYSTEM_BUNDLE", system)  # this machine's bundle, or its absence, decides nothing
    (tmp_path / "reg.example.com:5000").mkdir()
    (tmp_path / "reg.example.com:5000" / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nX\n")
    (tmp_path / "reg.example.com:5000" / "client.cert").write_text("not a CA")
    bundle = access.trust_bundle("reg.example.com:5000", tmp_path / "work", dirs=(tmp_path,))
    # the system bundle, then the *.crt (client.cert is no CA)
    assert isinstance(bundle, str) and Path(bundle).read_text() == ("-----BEGIN CERTIFICATE-----\nSYSTEM\n\n"
                                                                     "-----BEGIN CERTIFICATE-----\nX\n")
    # no CA in certs.d: the system bundle itself, not True (requests' True is certifi's bundle, which is not
    # what the containers tools trust)
    assert access.trust_bundle("other:1", tmp_path / "work", dirs=(tmp_path,)) == str(system)


def test_credential_helpers_named_per_registry_and_by_default():
    from imagepipe.registry.auth import default_helper, helper_for

    doc = {"credHelpers": {"https://reg.example.com:5000": "ecr-login", "other.example.com": "gcloud"},
           "credsStore": "pass", "auths": {"reg.example.com:5000": {"auth": "eDp5"}}}
    assert helper_for(doc, "reg.example.com:5000") == ("ecr-login", "credHelpers['https://reg.example.com:5000']")
    assert helper_for(doc, "third.example.com") is None
    assert default_helper(doc) == ("pass", "credsStore")
    assert default_helper({"credsStore": ""}) is None


def test_a_missing_helper_is_one_line_naming_it(tmp_path):
    from imagepipe.errors import PipelineError
    from imagepipe.registry.auth import resolve

    authfile = tmp_path / "auth.json"
    authfile.write_text('{"credHelpers": {"reg.example.com": "imagepipe-absent"}}')
    with pytest.raises(PipelineError, match=r"the credential helper docker-credential-imagepipe-absent "
                                            r"\(credHelpers\['reg.example.com'\] in --authfile .*\) is not installed"):
        resolve("reg.example.com", creds=None, authfile=authfile, environ={}, home=tmp_path)
