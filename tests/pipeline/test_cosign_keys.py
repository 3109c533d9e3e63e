"""--cosign-key and --cosign-public-key are refused before anything is built: a missing file with the options,
a key the real cosign cannot open (not a key, a wrong COSIGN_PASSWORD) by promote's preflight at the start
of the run. No containers: cosign reads local files only here."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from imagepipe.checks import advisories
from imagepipe.cli.arguments import parse_args
from imagepipe.errors import UsageError
from imagepipe.exec import cmdline
from imagepipe.pipeline import stagetable
from imagepipe.pipeline.context import Context
from imagepipe.pipeline.options import from_namespace
from imagepipe.pipeline.stages import promote
from imagepipe.services import sigstore
from imagepipe.supplychain import cosigning

SRC = Path(__file__).resolve().parents[2] / "src"
# what build/pipeline.py runs once its venv is there (tested without the bootstrap, which would make one), with
# a tripwire on the first step after the options (the host's profile, before the lock): where the options let
# a bad key through, the process ends there (exit 99), and no pipeline runs from a unit test
PAST_OPTIONS = 99
MAIN = textwrap.dedent(f"""
    import os, sys
    sys.path.insert(0, sys.argv.pop(1))
    from imagepipe.host import quirks
    from imagepipe.cli.main import main

    def past_the_options():
        sys.stderr.write("went past the options\\n")
        sys.stderr.flush()
        os._exit({PAST_OPTIONS})

    quirks.detect = past_the_options
    sys.exit(main())
""")


def _key_pair(where: Path, password: str) -> tuple[Path, Path]:
    """A key pair made by the real cosign, encrypted with `password`."""
    where.mkdir(parents=True)
    subprocess.run(cmdline.cosign_generate_key_pair(sigstore.cosign(), where), check=True, capture_output=True,
                   env={**os.environ, **cmdline.cosign_env(password=password)})
    return cmdline.cosign_key_pair(where)


def _context(tmp_path: Path, *argv: str) -> Context:
    opts = from_namespace(parse_args(["--state-dir", str(tmp_path / "state"), "--no-provision", *argv]))
    return Context(args=opts, profile=SimpleNamespace(), state_dir=tmp_path / "state")  # type: ignore[arg-type]


@pytest.fixture
def no_stage_runs(monkeypatch):
    """run_all up to its first stage: any stage (or step of one) that starts fails the test."""
    def started(_ctx, what, *_args, **_kw):
        raise AssertionError(f"a stage ran: {getattr(what, 'name', what)}")
    monkeypatch.setattr(stagetable, "run_stage", started)
    monkeypatch.setattr(stagetable, "timed", started)
    monkeypatch.setattr(advisories, "preflight", lambda *_a, **_kw: None)  # its own tests: test_advisories


def test_a_cosign_key_file_that_does_not_exist_is_one_usage_line_with_the_options(tmp_path):
    missing = tmp_path / "cosign.key"
    with pytest.raises(UsageError) as e:
        from_namespace(parse_args(["--cosign-key", str(missing)]))
    assert str(e.value) == (f"--cosign-key {missing}: no such file (give a cosign private key file, env://VAR, "
                            "k8s://NAMESPACE/SECRET or a KMS URI)")


def test_a_cosign_key_uri_is_not_taken_for_a_file_by_the_options(tmp_path):
    for uri in ("env://COSIGN_KEY", "k8s://imagepipe-ci/cosign-key", "awskms:///alias/cosign"):
        assert from_namespace(parse_args(["--cosign-key", uri])).signing.cosign_key == uri


def test_the_command_line_with_a_missing_cosign_key_exits_2_with_one_line_before_the_state_directory_is_made(
        tmp_path):
    state = tmp_path / "state"
    proc = subprocess.run([sys.executable, "-c", MAIN, str(SRC), "--state-dir", str(state), "--no-provision",
                           "--cosign-key", "/no/such/file"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != PAST_OPTIONS, "the options let the missing key through"
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == ("error: --cosign-key /no/such/file: no such file (give a cosign private key file, "
                           "env://VAR, k8s://NAMESPACE/SECRET or a KMS URI)\n")
    assert proc.stdout == ""
    assert not state.exists(), "the run took its lock (the first thing it does) before refusing the key"


def test_a_file_that_is_not_a_cosign_key_stops_the_run_before_any_stage_leaving_no_public_key(tmp_path, no_stage_runs):
    text = tmp_path / "notes.txt"
    text.write_text("not a key\n")
    ctx = _context(tmp_path, "--cosign-key", str(text))
    with pytest.raises(UsageError) as e:
        stagetable.run_all(ctx)
    assert str(e.value) == (f"--cosign-key {text}: cosign cannot open it (invalid pem block): give a cosign private "
                            "key file (`cosign generate-key-pair` writes one), env://VAR, k8s://NAMESPACE/SECRET or "
                            "a KMS URI")
    assert list(cosigning.key_dir(ctx.state_dir).iterdir()) == [], "an empty public key was left behind"


def test_a_wrong_cosign_password_is_one_line_naming_cosign_password(tmp_path, monkeypatch, no_stage_runs):
    key, _ = _key_pair(tmp_path / "keys", password="")
    monkeypatch.setenv("COSIGN_PASSWORD", "not-the-password")
    ctx = _context(tmp_path, "--cosign-key", str(key))
    with pytest.raises(UsageError) as e:
        stagetable.run_all(ctx)
    assert str(e.value) == (f"--cosign-key {key}: cosign cannot open it: COSIGN_PASSWORD does not decrypt it "
                            "(decrypt: encrypted: decryption failed); set COSIGN_PASSWORD to the password the key "
                            "was made with")


def test_a_password_protected_key_without_cosign_password_says_it_is_not_set(tmp_path, monkeypatch):
    key, _ = _key_pair(tmp_path / "keys", password="s3cret")
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    with pytest.raises(UsageError) as e:
        promote.preflight(_context(tmp_path, "--cosign-key", str(key)))
    assert str(e.value) == (f"--cosign-key {key}: cosign cannot open it: it is password-protected and "
                            "COSIGN_PASSWORD is not set (decrypt: encrypted: decryption failed); set "
                            "COSIGN_PASSWORD to the password the key was made with")


def test_a_good_cosign_key_is_opened_once_before_the_build_and_promote_signs_with_it(tmp_path, monkeypatch):
    key, public = _key_pair(tmp_path / "keys", password="s3cret")
    monkeypatch.setenv("COSIGN_PASSWORD", "s3cret")
    ctx = _context(tmp_path, "--cosign-key", str(key))
    promote.preflight(ctx)
    opened = ctx.cosign_key
    assert opened is not None and opened.ref == str(key) and opened.password == "s3cret" and not opened.own
    assert opened.public.read_text() == public.read_text()

    def again(*_a, **_kw):
        raise AssertionError("promote opened the key a second time")
    monkeypatch.setattr(cosigning, "user_key", again)
    monkeypatch.setattr(cosigning, "key_for", again)
    assert promote.cosign_key_of(ctx) is opened


def test_without_cosign_key_the_preflight_runs_no_cosign_and_promote_makes_the_pipelines_own(tmp_path, monkeypatch):
    ctx = _context(tmp_path)
    monkeypatch.setattr(sigstore, "cosign", lambda: pytest.fail("the preflight ran cosign without --cosign-key"))
    promote.preflight(ctx)
    assert ctx.cosign_key is None
    monkeypatch.undo()
    own = promote.cosign_key_of(ctx)
    assert own.own and own.ref == str(cosigning.key_dir(ctx.state_dir) / "cosign.key") and own.public.is_file()


def test_a_cosign_public_key_that_does_not_exist_is_one_usage_line_with_the_options(tmp_path):
    missing = tmp_path / "cosign.pub"
    with pytest.raises(UsageError) as e:
        from_namespace(parse_args(["attest", "verify", "127.0.0.1:5000/todo-backend@sha256:" + "0" * 64,
                                   "--cosign-public-key", str(missing)]))
    assert str(e.value) == (f"--cosign-public-key {missing}: no such file (give the signer's cosign public key, "
                            "the PEM `python3 build/pipeline.py public-key` prints)")
