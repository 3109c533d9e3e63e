"""A Go that can build ci/cluster's, ci/interop's, ci/sigstore's and ci/admission's modules: the one on PATH
when it is new enough, else the toolchain the Go module proxy serves as the module `golang.org/toolchain` (as
`GOTOOLCHAIN` switching fetches it), checked against the hash pinned in ci/go-toolchain.sum and cached outside
the clone.

Debian 12's golang-go is 1.19: too old for our go.mod files, and too old to switch toolchains itself."""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import requests

from imagepipe.errors import PipelineError
from imagepipe.exec import runner
from imagepipe.paths import HOST_CA_BUNDLE, ROOT
from imagepipe.ui import output

SUMS = ROOT / "ci/go-toolchain.sum"
MODULES = (ROOT / "ci/cluster/go.mod", ROOT / "ci/interop/go.mod", ROOT / "ci/sigstore/go.mod",
           ROOT / "ci/admission/go.mod")
MODULE = "golang.org/toolchain"
ARCHES = {"x86_64": "amd64", "aarch64": "arm64"}


def parse_version(text: str) -> tuple[int, ...]:
    """'go1.26.8', '1.24.0' or '1.22' as a comparable tuple."""
    match = re.fullmatch(r"(?:go)?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if match is None:
        raise ValueError(f"not a Go version: {text!r}")
    return tuple(int(g or 0) for g in match.groups())


def required() -> tuple[int, ...]:
    """The newest `go` directive of our go.mod files: GOTOOLCHAIN=local builds need at least this."""
    found = [re.search(r"^go (\S+)$", m.read_text(), re.M) for m in MODULES]
    return max(parse_version(f.group(1)) for f in found if f is not None)


def pinned() -> dict[str, tuple[str, str]]:
    """GOARCH -> (module version, h1 hash) from ci/go-toolchain.sum."""
    pins: dict[str, tuple[str, str]] = {}
    for line in SUMS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            module, version, h1 = line.split()
            if module == MODULE:
                pins[version.rsplit(".", 1)[1].split("-")[-1]] = (version, h1)
    return pins


def goarch() -> str:
    machine = platform.machine()
    if machine not in ARCHES:
        raise PipelineError(f"no Go toolchain is pinned for {machine} (ci/go-toolchain.sum has {sorted(pinned())})",
                            stage="test")
    return ARCHES[machine]


def version_of(go: str) -> tuple[int, ...] | None:
    try:
        out = runner.run([go, "env", "GOVERSION"], stage="test", timeout=60, env={"GOTOOLCHAIN": "local"}).stdout
        return parse_version(out)
    except (PipelineError, ValueError):
        return None  # too old for `go env GOVERSION` (before 1.16), or broken: not usable either way


def candidates() -> list[str]:
    """Go binaries already on this machine: PATH, then where go.dev's tarball installs it (CI environments may
    not have /usr/local/go/bin on PATH)."""
    found = [runner.installed("go"), "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").is_file() else None]
    return list(dict.fromkeys(g for g in found if g))


def cache_dir(cache: Path) -> Path:
    version, _ = pinned()[goarch()]
    return cache / "go" / version


def find(cache: Path) -> str | None:
    """A Go new enough for our modules, without downloading anything."""
    need = required()
    for go in candidates():
        have = version_of(go)
        if have is not None and have >= need:
            return go
    cached = cache_dir(cache) / "bin/go"
    return str(cached) if (cache_dir(cache) / ".complete").exists() else None


def proxies() -> list[str]:
    """The module proxies to ask, as the go command would: $GOPROXY, else the present Go's own setting."""
    setting = os.environ.get("GOPROXY", "")
    if not setting:
        for go in candidates():
            try:
                setting = runner.run([go, "env", "GOPROXY"], stage="test", timeout=60).stdout.strip()
                break
            except PipelineError:
                continue
    return [p.rstrip("/") for p in re.split(r"[,|]", setting) if p.startswith(("https://", "http://"))]


def zip_hash(path: Path) -> str:
    """The module zip's h1: hash, as go.sum records it (golang.org/x/mod/sumdb/dirhash.Hash1)."""
    with zipfile.ZipFile(path) as z:
        names = sorted(i.filename for i in z.infolist() if not i.is_dir())
        lines = "".join(f"{hashlib.sha256(z.read(n)).hexdigest()}  {n}\n" for n in names)
    return "h1:" + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode()


def download(proxy: str, version: str, dest: Path) -> None:
    url = f"{proxy}/{MODULE}/@v/{version}.zip"
    verify: bool | str = str(HOST_CA_BUNDLE) if HOST_CA_BUNDLE.exists() else True
    with requests.get(url, stream=True, timeout=60, verify=verify) as response:
        response.raise_for_status()
        with dest.open("wb") as f:
            for chunk in response.iter_content(1 << 20):
                f.write(chunk)


def ensure(cache: Path) -> str:
    """The path of a Go that builds our modules: found here, or fetched from the module proxy once."""
    found = find(cache)
    if found is not None:
        return found
    version, h1 = pinned()[goarch()]
    need = ".".join(map(str, required()))
    servers = proxies()
    if not servers:
        raise PipelineError(f"no Go {need} or newer here and no Go module proxy to fetch one from: set GOPROXY "
                            "(or install Go from go.dev)", stage="test")
    target = cache_dir(cache)
    output.stage(f"==> test: fetching Go ({MODULE}@{version}) from the Go module proxy (no Go >= {need} here)")
    errors = []
    with tempfile.TemporaryDirectory(prefix="imagepipe-go-") as tmp:
        archive = Path(tmp) / "toolchain.zip"
        for proxy in servers:
            try:
                download(proxy, version, archive)
                break
            except requests.RequestException as e:
                errors.append(f"{proxy}: {e}")
        else:
            raise PipelineError(f"cannot fetch {MODULE}@{version} from the Go module proxy ({'; '.join(errors)}): "
                                "check GOPROXY and this machine's network", stage="test")
        got = zip_hash(archive)
        if got != h1:
            raise PipelineError(f"{MODULE}@{version} from the proxy hashes to {got}, not {h1} as "
                                f"{SUMS.relative_to(ROOT)} pins: refusing it", stage="test")
        unpack(archive, f"{MODULE}@{version}/", target)
    return str(target / "bin/go")


def unpack(archive: Path, prefix: str, target: Path) -> None:
    """The zip's tree under `prefix` into `target`, whole or not at all. Module zips keep no file modes: the
    programs are made executable as the go command does when it switches toolchains."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            rel = info.filename[len(prefix):]
            dest = partial / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(z.read(info))
            if rel.startswith("bin/") or rel.startswith("pkg/tool/"):
                dest.chmod(0o755)
    (partial / ".complete").write_text(prefix + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
