"""The team's signing key as a CI pod holds it (an armored secret key in a mounted Secret) and the lookaside
a pod writes into (`--lookaside-dir`): real gpg, no containers."""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from imagepipe.cli.arguments import parse_args
from imagepipe.errors import PipelineError, UsageError
from imagepipe.pipeline.options import from_namespace
from imagepipe.supplychain import signing


def _team_key(tmp_path) -> tuple[str, str]:
    home = tmp_path / "team-gnupg"
    home.mkdir(mode=0o700, parents=True)
    env = {**os.environ, "GNUPGHOME": str(signing.short_home(home))}  # a lane's temp path is deeper
    gpg = ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", "ci@todo.example", "ed25519", "sign", "never"], env=env, check=True,
                   capture_output=True)
    secret = subprocess.run([*gpg, "--armor", "--export-secret-keys"], env=env, check=True, capture_output=True,
                            text=True).stdout
    fingerprint = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=env, check=True,
                                 capture_output=True, text=True).stdout.split("fpr:::::::::")[1].split(":")[0]
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=True)
    return secret, fingerprint


@pytest.fixture(autouse=True)
def no_alias_left(tmp_path):
    """gpg's sockets need a short GNUPGHOME: a deep one gets an alias in the temp directory, removed here
    with the test's state."""
    yield
    alias = signing.short_home(tmp_path / "state" / "signing" / "imported")
    if alias.is_symlink():
        alias.unlink()


def test_a_key_file_is_imported_into_a_keyring_of_the_run_and_signs(tmp_path):
    secret, fingerprint = _team_key(tmp_path)
    key_file = tmp_path / "key.asc"
    key_file.write_text(secret)
    state = tmp_path / "state"
    key = signing.key_file(key_file, state)
    assert key.fingerprint == fingerprint
    assert "BEGIN PGP PUBLIC KEY BLOCK" in key.public_key.read_text()
    listed = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env={**os.environ, **key.env},
                            capture_output=True, text=True, check=True).stdout
    assert f"fpr:::::::::{fingerprint}:" in listed
    # a second run starts from an empty keyring: only the key file's key is there
    other, other_fpr = _team_key(tmp_path / "other")
    key_file.write_text(other)
    again = signing.key_file(key_file, state)
    listed = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env={**os.environ, **again.env},
                            capture_output=True, text=True, check=True).stdout
    assert again.fingerprint == other_fpr and fingerprint not in listed
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, **again.env}, check=True)


def test_a_file_that_holds_no_secret_key_is_one_line_naming_the_export(tmp_path):
    not_a_key = tmp_path / "key.asc"
    not_a_key.write_text("hello\n")
    with pytest.raises(PipelineError) as e:
        signing.key_file(not_a_key, tmp_path / "state")
    assert str(e.value).startswith(f"--signing-key {not_a_key}: not an armored GPG secret key (")
    assert str(e.value).endswith("): export one with `gpg --armor --export-secret-keys FINGERPRINT`")
    assert "\n" not in str(e.value)


def test_a_key_path_that_does_not_exist_is_one_usage_line(tmp_path):
    with pytest.raises(UsageError) as e:
        from_namespace(parse_args(["promote", "--signing-key", str(tmp_path / "key.asc")]))
    assert str(e.value) == (f"--signing-key {tmp_path / 'key.asc'}: no such file (give an armored secret key, or "
                            "a fingerprint in your keyring)")


def test_a_lookaside_dir_without_the_url_that_serves_it_is_one_usage_line(tmp_path):
    with pytest.raises(UsageError) as e:
        from_namespace(parse_args(["promote", "--lookaside-dir", str(tmp_path)]))
    assert str(e.value) == "--lookaside-dir needs --lookaside URL: the address consumers read that directory at"
    ok = from_namespace(parse_args(["promote", "--lookaside-dir", str(tmp_path), "--lookaside", "http://sigs:80"]))
    assert ok.signing.lookaside_dir == tmp_path


def test_sweeping_aliases_removes_the_dangling_and_those_under_a_directory_only(tmp_path, monkeypatch):
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    live, gone, tests = tmp_path / "live", tmp_path / "gone", tmp_path / "tests"
    for home in (live, tests / "state"):
        home.mkdir(parents=True)
    links = {name: temp / f"{signing.ALIAS_PREFIX}{name}" for name in ("live", "gone", "tests")}
    links["live"].symlink_to(live)
    links["gone"].symlink_to(gone)
    links["tests"].symlink_to(tests / "state")
    (temp / f"{signing.ALIAS_PREFIX}dir").mkdir()  # not an alias of ours: a directory is left alone

    assert signing.sweep_aliases() == [links["gone"]]
    assert sorted(signing.sweep_aliases(under=tests)) == [links["tests"]]
    assert sorted(p.name for p in temp.iterdir()) == [f"{signing.ALIAS_PREFIX}dir", f"{signing.ALIAS_PREFIX}live"]
