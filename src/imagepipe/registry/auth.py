"""Registry credentials, resolved once per run and handed to every client that talks to the registry.

Sources, first found wins: --creds USER:PASS (or --creds USER with the password in
IMAGEPIPE_REGISTRY_PASSWORD), --authfile, $REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json (what
`podman login` writes), ~/.docker/config.json. In each file, as docker and the containers tools read it: a
credential helper named for the registry (`credHelpers`), else its `auths` entry, else the default helper
(`credsStore`). A helper (`docker-credential-NAME` on PATH) is asked over the docker-credential protocol:
`get`, the registry on stdin, JSON back. The secret reaches tools only through a file of mode 0600 (never
argv), and the value's repr leaves the password out, so no log or report can carry it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imagepipe.errors import PipelineError, ToolFailed, ToolMissing, UsageError
from imagepipe.exec import runner
from imagepipe.host.files import write_atomic

PASSWORD_ENV = "IMAGEPIPE_REGISTRY_PASSWORD"  # noqa: S105 (the variable that holds it)


@dataclass(frozen=True)
class RegistryAuth:
    registry: str  # HOST[:PORT], as the auth files key it
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    source: str = "none"  # where they came from, for messages

    @property
    def anonymous(self) -> bool:
        return self.username is None

    def auths(self) -> dict[str, object]:
        """The `auths` document both containers' auth.json and docker's config.json use (kaniko and a
        Kubernetes dockerconfigjson Secret read it too)."""
        if self.username is None:
            return {"auths": {}}
        token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
        return {"auths": {self.registry: {"auth": token}}}

    def auths_json(self) -> str:
        return json.dumps(self.auths())


def candidates(authfile: Path | None, environ: Mapping[str, str], home: Path) -> list[tuple[Path, str]]:
    """The auth files to read, in the order users expect, each with how to name it in a message."""
    found: list[tuple[Path, str]] = []
    if authfile is not None:
        found.append((authfile, f"--authfile {authfile}"))
    if environ.get("REGISTRY_AUTH_FILE"):
        found.append((Path(environ["REGISTRY_AUTH_FILE"]), "REGISTRY_AUTH_FILE"))
    # podman login's default: ${XDG_RUNTIME_DIR}/containers/auth.json, /run/containers/UID/ without it
    runtime = environ.get("XDG_RUNTIME_DIR")
    login = Path(runtime) / "containers/auth.json" if runtime else Path(f"/run/containers/{os.getuid()}/auth.json")
    found.append((login, "podman login"))
    found.append((home / ".docker/config.json", "~/.docker/config.json"))
    return found


def entry_for(document: Mapping[str, object], registry: str, repo: str = "") -> tuple[str, str] | None:
    """USER, PASSWORD for `registry` in an auth document. Keys may be HOST, HOST/NAMESPACE (the most
    specific wins, as podman matches them) or a URL (docker's `https://HOST/v1/`)."""
    auths = document.get("auths")
    if not isinstance(auths, dict):
        return None
    keys: dict[str, object] = {}
    for key, value in auths.items():
        bare = str(key).removeprefix("https://").removeprefix("http://").removesuffix("/v1/").rstrip("/")
        keys[bare] = value
    wanted = f"{registry}/{repo}".rstrip("/")
    while wanted:
        value = keys.get(wanted)
        if isinstance(value, dict) and isinstance(value.get("auth"), str) and value["auth"]:
            try:
                user, sep, password = base64.b64decode(value["auth"]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return (user, password) if sep else None
        wanted = wanted.rpartition("/")[0] if "/" in wanted else ""
    return None


def helper_for(document: Mapping[str, object], registry: str) -> tuple[str, str] | None:
    """(helper name, which setting named it) when the document sends `registry` to a credential helper."""
    helpers = document.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            bare = str(key).removeprefix("https://").removeprefix("http://").rstrip("/")
            if bare == registry and isinstance(name, str) and name:
                return name, f"credHelpers[{key!r}]"
    return None


def default_helper(document: Mapping[str, object]) -> tuple[str, str] | None:
    store = document.get("credsStore")
    return (store, "credsStore") if isinstance(store, str) and store else None


def from_helper(registry: str, helper: str, where: str) -> RegistryAuth:
    """The credentials `docker-credential-HELPER get` gives for `registry`; one line naming the helper when it
    is missing, fails or has none. Its output (the secret) is never streamed or logged."""
    program = f"docker-credential-{helper}"
    try:
        result = runner.run([program, "get"], input=registry, timeout=60, stream=False, what=program)
    except ToolMissing:
        raise PipelineError(f"the credential helper {program} ({where}) is not installed or not on PATH: install "
                            "it, or remove that entry to use the file's auths or --creds") from None
    except ToolFailed as e:
        said = runner.first_error_line(e.output) or f"exit {e.code}"
        raise PipelineError(f"the credential helper {program} ({where}) gave no credentials for {registry}: "
                            f"{said} (store them with the helper, e.g. `echo … | {program} store`, or pass --creds)"
                            ) from None
    try:
        answer = json.loads(result.stdout)
        user, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError):
        raise PipelineError(f"the credential helper {program} ({where}) answered something that is not the "
                            "docker-credential protocol's JSON (Username, Secret)") from None
    if user == "<token>":  # an identity token (ACR's refresh token): a login flow this pipeline does not speak
        raise PipelineError(f"the credential helper {program} ({where}) gave an identity token for {registry}, "
                            "not a username and password: get a password from the registry's CLI and pass --creds")
    return RegistryAuth(registry, user, secret, f"{program} ({where})")


def resolve(registry: str, *, creds: str | None, authfile: Path | None, repo: str = "",
            environ: Mapping[str, str] | None = None, home: Path | None = None) -> RegistryAuth:
    """The run's credentials for `registry` (anonymous when no source has any)."""
    env = os.environ if environ is None else environ
    if creds is not None:
        user, sep, password = creds.partition(":")
        if not sep:
            if not env.get(PASSWORD_ENV):
                raise UsageError(f"--creds {user} has no password: pass --creds USER:PASSWORD or set {PASSWORD_ENV}")
            password = env[PASSWORD_ENV]
        if not user:
            raise UsageError("--creds must be USER:PASSWORD (the user is empty)")
        return RegistryAuth(registry, user, password, "--creds")
    if authfile is not None and not authfile.is_file():
        raise UsageError(f"--authfile {authfile} does not exist: run `podman login --authfile {authfile} "
                         f"{registry}` or drop the option")
    for path, name in candidates(authfile, env, home or Path.home()):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(document, dict):
            continue
        helper = helper_for(document, registry)
        if helper is not None:
            return from_helper(registry, helper[0], f"{helper[1]} in {name}")
        found = entry_for(document, registry, repo)
        if found is not None:
            return RegistryAuth(registry, found[0], found[1], name)
        store = default_helper(document)
        if store is not None:
            return from_helper(registry, store[0], f"{store[1]} in {name}")
        if name.startswith("--authfile"):
            break  # a file named on the command line is the only one read, as with podman's --authfile
    return RegistryAuth(registry)


def write_private(auth: RegistryAuth, path: Path) -> Path:
    """The auth document at `path`, mode 0600 from its creation (its directory made 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return write_atomic(path, auth.auths_json(), mode=0o600)
