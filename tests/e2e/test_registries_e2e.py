"""The whole job against registries as users run them (HTTPS with a private CA in certs.d, htpasswd, token
auth with short-lived scoped tokens, the OCI referrers API), with --creds and with `podman login`'s auth
file; then `attest verify`, and oras and crane (built from their Go modules) finding what we published. And
the bad inputs: each one line, the push stage's exit code, no tag, the password never shown."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest
import requests
from registries_support import (
    PASSWORD,
    USER,
    Distribution,
    FailingUploads,
    ReferrersRegistry,
    TokenIssuer,
    dns_name,
    make_tls,
)

from imagepipe.registry.auth import PASSWORD_ENV
from imagepipe.services import interop
from imagepipe.supplychain import signing

pytestmark = pytest.mark.e2e

SBOM = "application/vnd.cyclonedx+json"
PROVENANCE = "application/vnd.in-toto+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def tools() -> interop.Tools:
    """Built by the test command's set-up (and here, if a run skipped it): these tests never skip."""
    return interop.ensure()


class CmdlineWatch:
    """Samples every process's command line while a run lasts; `seen` holds any that carried the password."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self) -> None:
        own = str(os.getpid())
        while not self.done.wait(0.05):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit() or proc.name == own:
                    continue
                try:
                    line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if PASSWORD in line and "pytest" not in line:
                    self.seen.append(line)

    def __enter__(self) -> CmdlineWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def run_job(pipeline, registry: str, tmp_path: Path, *, how: str, env: dict[str, str] | None = None,
            extra: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess[str], dict]:
    """The whole job with credentials given `how` ('creds', 'podman-login', 'none', or 'helper' with `env` and
    `extra` naming it); the report read back."""
    env = dict(env or os.environ)
    args = ["--no-provision", "--registry", registry, "--report", str(tmp_path / "report.json"), *extra]
    if how == "creds":
        args += ["--creds", f"{USER}:{PASSWORD}"]
    elif how == "podman-login":
        env["XDG_RUNTIME_DIR"] = str(tmp_path / "xdg")
        (tmp_path / "xdg").mkdir(mode=0o700)
        login = subprocess.run(["podman", "login", "-u", USER, "--password-stdin", registry], input=PASSWORD,
                               capture_output=True, text=True, env=env)
        assert login.returncode == 0, login.stderr
        assert (tmp_path / "xdg/containers/auth.json").is_file(), "podman login writes XDG_RUNTIME_DIR's auth.json"
    with CmdlineWatch() as watch:
        proc = pipeline.run(*args, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not watch.seen, f"the password was on a command line: {watch.seen[:1]}"
    report = json.loads((tmp_path / "report.json").read_text())
    return proc, report


def attest_verify(pipeline, image: str, how: str, tmp_path: Path, *, env: dict[str, str] | None = None,
                  extra: tuple[str, ...] = ()) -> None:
    env = dict(env or os.environ)
    extra = list(extra)
    if how == "creds":
        extra = ["--creds", USER]
        env[PASSWORD_ENV] = PASSWORD
    elif how == "podman-login":
        env["XDG_RUNTIME_DIR"] = str(tmp_path / "xdg")
    proc = pipeline.run("attest", "verify", image, *extra, env=env)
    assert proc.returncode == 0, proc.stderr


def no_password_anywhere(proc, report: dict, pipeline) -> None:
    assert PASSWORD not in proc.stdout + proc.stderr
    assert PASSWORD not in json.dumps(report)
    leftovers = list((pipeline.state / "access").rglob("*")) if (pipeline.state / "access").exists() else []
    assert not [p for p in leftovers if p.is_file()], f"auth files left in the state directory: {leftovers}"


def standard_clients_find(image: str, report: dict, registry: str, *, ca: Path | None, tmp_path: Path,
                          authed: bool) -> None:
    """oras discover lists the SBOM and the provenance of the digest; oras pull gives their bytes; crane
    reads the image by digest."""
    found = tools()
    env = dict(os.environ, DOCKER_CONFIG=str(tmp_path / "docker"), HOME=str(tmp_path))
    common = ["--plain-http"] if ca is None else ["--ca-file", str(ca)]
    if authed:
        login = subprocess.run([str(found.path("oras")), "login", *common, "-u", USER, "--password-stdin", registry],
                               input=PASSWORD, capture_output=True, text=True, env=env)
        assert login.returncode == 0, login.stderr
    listed = subprocess.run([str(found.path("oras")), "discover", *common, "--format", "json", image],
                            capture_output=True, text=True, env=env)
    assert listed.returncode == 0, listed.stderr
    referrers = json.loads(listed.stdout).get("referrers") or json.loads(listed.stdout).get("manifests") or []
    by_digest = {r["digest"]: r for r in referrers}
    for kind in ("sbom", "provenance"):
        digest = report[kind]["digest"]
        assert digest in by_digest, f"oras discover does not list the {kind} {digest}: {listed.stdout[:800]}"
        out = tmp_path / f"pulled-{kind}"
        pulled = subprocess.run([str(found.path("oras")), "pull", *common, "-o", str(out),
                                 f"{image.split('@')[0]}@{digest}"], capture_output=True, text=True, env=env)
        assert pulled.returncode == 0, pulled.stderr
        files = [p for p in out.rglob("*") if p.is_file()]
        assert len(files) == 1
        assert "sha256:" + __import__("hashlib").sha256(files[0].read_bytes()).hexdigest() == report[kind]["blob"]
        assert PASSWORD.encode() not in files[0].read_bytes()
    crane_env = dict(env, SSL_CERT_FILE=str(ca)) if ca else env
    insecure = ["--insecure"] if ca is None else []
    digest = subprocess.run([str(found.path("crane")), "digest", *insecure, image], capture_output=True, text=True,
                            env=crane_env)
    assert digest.returncode == 0, digest.stderr
    assert digest.stdout.strip() == image.split("@")[1]


@pytest.fixture
def tls_registry(tmp_path):
    reg = Distribution(tmp_path / "registry", auth="htpasswd").start()
    yield reg
    reg.stop()


@pytest.fixture
def token_registry(tmp_path):
    """Registry and token server share one CA (in certs.d), as a hosted registry's do the public roots."""
    host = dns_name()
    tls = make_tls(tmp_path / "tls", host)
    issuer = TokenIssuer(tmp_path / "issuer", tls=tls, host=host).start()
    reg = Distribution(tmp_path / "registry", auth="token", issuer=issuer, tls=tls, host=host).start()
    yield reg
    reg.stop()
    issuer.stop()


@pytest.mark.parametrize("how", ["creds", "podman-login"])
def test_whole_job_on_tls_registry_with_htpasswd(pipeline, green, tls_registry, tmp_path, how):
    proc, report = run_job(pipeline, tls_registry.addr, tmp_path, how=how)
    image = report["image"]
    assert report["passed"] and report["signature"]["tags"] == [f"{tls_registry.addr}/todo-backend:latest"]
    attest_verify(pipeline, image, how, tmp_path)
    no_password_anywhere(proc, report, pipeline)
    if how == "creds":  # nor in the image: its every file and its config, read from the pulled tree
        from imagepipe.checks import imagefs
        from imagepipe.image import mount

        with mount.mounted(image) as root:
            assert imagefs.scan(root, [PASSWORD]).secrets == []
    standard_clients_find(image, report, tls_registry.addr, ca=tls_registry.ca, tmp_path=tmp_path, authed=True)


@pytest.mark.parametrize("how", ["creds", "podman-login"])
def test_whole_job_on_token_auth_registry(pipeline, green, token_registry, tmp_path, how):
    issuer = token_registry.issuer
    proc, report = run_job(pipeline, token_registry.addr, tmp_path, how=how)
    image = report["image"]
    attest_verify(pipeline, image, how, tmp_path)
    no_password_anywhere(proc, report, pipeline)
    scopes = [scope for _, scope, _ in issuer.issued if "todo-backend" in scope]
    assert len(scopes) > len(set(scopes)), "tokens for a scope were fetched again during the run"
    standard_clients_find(image, report, token_registry.addr, ca=token_registry.ca, tmp_path=tmp_path, authed=True)


def test_whole_job_on_a_registry_with_the_referrers_api(pipeline, green, tmp_path):
    found = tools()
    reg = ReferrersRegistry(found.path("referrers-registry"), tmp_path / "ggcr").start()
    try:
        proc, report = run_job(pipeline, reg.addr, tmp_path, how="none")
        digest = report["image"].split("@")[1]
        api = requests.get(f"http://{reg.addr}/v2/todo-backend/referrers/{digest}", timeout=10)
        assert api.status_code == 200
        listed = {m["digest"] for m in api.json()["manifests"]}
        assert {report["sbom"]["digest"], report["provenance"]["digest"]} <= listed, "found through the API"
        attest_verify(pipeline, report["image"], "none", tmp_path)
        standard_clients_find(report["image"], report, reg.addr, ca=None, tmp_path=tmp_path, authed=False)
    finally:
        reg.stop()


# --- bad inputs: one line, the push stage's exit code, no tag, no password ---------------------------------

def refused_cleanly(proc, *expected: str) -> None:
    assert proc.returncode == 14, (proc.returncode, proc.stderr[-2000:])
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    assert PASSWORD not in proc.stdout + proc.stderr and "wrong-pass" not in proc.stdout + proc.stderr


def tags(registry: Distribution, repo: str = "todo-backend") -> list[str]:
    r = requests.get(f"https://127.0.0.1:{registry.port}/v2/{repo}/tags/list", verify=str(registry.ca), timeout=10,
                     auth=(USER, PASSWORD))
    return list((r.json().get("tags") or []) if r.status_code == 200 else [])


def digest(registry: Distribution, tag: str, repo: str = "todo-backend") -> str:
    r = requests.head(f"https://127.0.0.1:{registry.port}/v2/{repo}/manifests/{tag}", verify=str(registry.ca),
                      timeout=10, auth=(USER, PASSWORD), headers={"Accept": DOCKER_MANIFEST})
    assert r.status_code == 200, r.status_code
    return r.headers["Docker-Content-Digest"]


def test_wrong_password_on_token_registry(pipeline, green, token_registry):
    proc = pipeline.run("push", "--no-provision", "--registry", token_registry.addr, "--creds", f"{USER}:wrong-pass")
    refused_cleanly(proc, "refused the credentials", "--creds")


def test_wrong_password_on_htpasswd_registry_moves_no_tag(pipeline, green, tls_registry):
    pushed = pipeline.run("push", "--no-provision", "--registry", tls_registry.addr, "--creds", f"{USER}:{PASSWORD}")
    assert pushed.returncode == 0, pushed.stderr
    before = {tag: digest(tls_registry, tag) for tag in tags(tls_registry)}
    assert before, "the right password pushed the commit's tag"
    proc = pipeline.run("--no-provision", "--registry", tls_registry.addr, "--creds", f"{USER}:wrong-pass")
    refused_cleanly(proc, "refused the credentials")
    assert {tag: digest(tls_registry, tag) for tag in tags(tls_registry)} == before, "no tag made or moved"
    assert "latest" not in before


def test_untrusted_certificate_names_the_file_to_create(pipeline, green, tmp_path):
    reg = Distribution(tmp_path / "registry", auth="htpasswd", trust=False).start()
    try:
        proc = pipeline.run("push", "--no-provision", "--registry", reg.addr, "--creds", f"{USER}:{PASSWORD}")
        refused_cleanly(proc, "not trusted", f"/etc/containers/certs.d/{reg.addr}/ca.crt")
        assert tags(reg) == []
    finally:
        reg.stop()


def test_token_server_down(pipeline, green, token_registry):
    token_registry.issuer.stop()
    proc = pipeline.run("push", "--no-provision", "--registry", token_registry.addr, "--creds", f"{USER}:{PASSWORD}")
    refused_cleanly(proc, "token server", token_registry.issuer.realm)


def test_a_repository_the_token_does_not_cover(pipeline, green, token_registry):
    proc = pipeline.run("--no-provision", "--registry", token_registry.addr, "--creds", f"{USER}:{PASSWORD}",
                        "--repo", "someone-elses")
    refused_cleanly(proc, "no push access to someone-elses")
    assert tags(token_registry, "someone-elses") == []


def test_5xx_on_blob_upload_is_retried_then_reported(pipeline, green, tmp_path):
    reg = Distribution(tmp_path / "registry", auth="none").start()
    proxy = FailingUploads(f"127.0.0.1:{reg.port}", reg.ca)  # plain HTTP to the pipeline, TLS to the registry
    try:
        proc = pipeline.run("push", "--no-provision", "--registry", proxy.addr)
        assert proc.returncode == 14, proc.stderr
        assert "answered 500 Internal Server Error 3 times" in proc.stderr
        assert proxy.uploads >= 3, "each attempt reached the registry"
        assert tags(reg) == []
    finally:
        proxy.stop()
        reg.stop()


# --- credential helpers: the password only in a `pass` store, read through docker-credential-pass ----------

class PassStore:
    """A real password store: a GPG key without a passphrase in a GNUPGHOME of the test's own, `pass init`
    with it, and docker-credential-pass (built from its Go module) on PATH. Its gpg-agent is stopped after."""

    def __init__(self, where: Path) -> None:
        helper_dir = interop.ensure().dir
        (where / "gnupg").mkdir(mode=0o700)
        # the agent's socket path must fit a unix socket's (a lane's temp path is deeper)
        self.env = {**os.environ, "GNUPGHOME": str(signing.short_home(where / "gnupg")),
                    "PASSWORD_STORE_DIR": str(where / "store"), "PATH": f"{helper_dir}:{os.environ['PATH']}"}
        self.run("gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
                 "imagepipe test <test@example.invalid>", "default", "default", "never")
        listed = self.run("gpg", "--batch", "--with-colons", "--list-secret-keys").stdout
        fingerprint = next(ln.split(":")[9] for ln in listed.splitlines() if ln.startswith("fpr:"))
        self.run("pass", "init", fingerprint)

    def run(self, *argv: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, env=self.env)
        assert proc.returncode == 0, proc.stderr
        return proc

    def store(self, registry: str) -> None:
        self.run("docker-credential-pass", "store",
                 input=json.dumps({"ServerURL": registry, "Username": USER, "Secret": PASSWORD}))

    def close(self) -> None:
        subprocess.run(["gpgconf", "--kill", "all"], env=self.env, capture_output=True)


@pytest.fixture
def pass_store(tmp_path):
    store = PassStore(tmp_path)
    yield store
    store.close()


def auth_file(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("setting", ["credHelpers", "credsStore"])
def test_whole_job_with_the_password_only_in_a_credential_helper(pipeline, green, tls_registry, pass_store, tmp_path,
                                                                 setting):
    pass_store.store(tls_registry.addr)
    document = {"credHelpers": {tls_registry.addr: "pass"}} if setting == "credHelpers" else {"credsStore": "pass"}
    authfile = auth_file(tmp_path, document)
    assert PASSWORD not in authfile.read_text()
    proc, report = run_job(pipeline, tls_registry.addr, tmp_path, how="helper", env=pass_store.env,
                           extra=("--authfile", str(authfile)))
    assert report["passed"] and report["signature"]["tags"] == [f"{tls_registry.addr}/todo-backend:latest"]
    attest_verify(pipeline, report["image"], "helper", tmp_path, env=pass_store.env,
                  extra=("--authfile", str(authfile)))
    no_password_anywhere(proc, report, pipeline)


def test_a_credential_helper_that_is_not_installed_is_one_line(pipeline, green, tls_registry, tmp_path):
    authfile = auth_file(tmp_path, {"credHelpers": {tls_registry.addr: "imagepipe-nosuch"}})
    proc = pipeline.run("--no-provision", "--registry", tls_registry.addr, "--authfile", str(authfile))
    refused_cleanly(proc, "the credential helper docker-credential-imagepipe-nosuch "
                          f"(credHelpers['{tls_registry.addr}'] in --authfile {authfile}) is not installed")
    assert tags(tls_registry) == []


def test_a_credential_helper_answering_an_error_is_one_line(pipeline, green, tls_registry, pass_store, tmp_path):
    authfile = auth_file(tmp_path, {"credsStore": "pass"})  # the store holds nothing for this registry
    proc = pipeline.run("--no-provision", "--registry", tls_registry.addr, "--authfile", str(authfile),
                        env=pass_store.env)
    refused_cleanly(proc, f"the credential helper docker-credential-pass (credsStore in --authfile {authfile}) "
                          f"gave no credentials for {tls_registry.addr}: credentials not found in native keychain")
    assert tags(tls_registry) == []
