"""verify's static checks: the image's file tree, config and history, read without running it. One mount,
one pass over the tree (imagefs.scan); run in a worker thread while the service starts."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from imagepipe.checks import advisories, debsec, imagefs
from imagepipe.checks.types import Check, VerifyOptions
from imagepipe.errors import PipelineError
from imagepipe.exec import cmdline, runner
from imagepipe.host.profile import HostProfile
from imagepipe.image import mount
from imagepipe.supplychain import inventory

BAKED = ("BETTER_AUTH_SECRET", "OPENAI_API_KEY", "DATABASE_URL")  # must never be an image ENV


def run(profile: HostProfile, image: str, *, config: dict[str, Any], secrets: dict[str, str],
        opt: VerifyOptions, arch: str = "amd64") -> tuple[list[Check], inventory.Inventory]:
    """The static checks from one mount of the image, and the inventory they read (the SBOM's too)."""
    t0 = time.monotonic()
    with mount.mounted(image) as root:
        found = imagefs.scan(root, list(secrets.values()))
        tools = imagefs.find_build_tools(root)
        contents = inventory.read(root)
    history = runner.run(cmdline.podman_history(profile, image),
                         stage="verify").stdout
    walked = round(time.monotonic() - t0, 2)
    checks = [readable(found), build_tools(tools), no_secrets(found, config, history, secrets), ownership(found),
              setuid(found), junk(found)]
    for check in checks:  # they share one pass: each shows its time
        check.seconds = walked
    t1 = time.monotonic()
    vulns = vulnerabilities(contents, image, opt, arch=arch)
    vulns.seconds = round(time.monotonic() - t1, 2)
    sizes = dict(sorted(found.sizes.items(), key=lambda kv: -kv[1]))
    return [*checks, vulns], dataclasses.replace(contents, sizes=sizes)


def readable(found: imagefs.Scan) -> Check:
    """Every entry a directory lists can be read. A builder that writes whiteout markers into a layer where
    nothing is below (kaniko's cached multi-stage builds without FF_KANIKO_SKIP_WRITE_WHITEOUTS) ships
    phantom entries: listed by readdir, ENOENT on lstat, which break any tool that walks the tree."""
    shown = [f"{path} ({err})" for path, err in found.unreadable[:10]]
    return Check("tree-readable", not found.unreadable, shown, [],
                 "every entry of the tree can be read" if not found.unreadable else
                 f"{len(found.unreadable)} entries are listed but cannot be read: {', '.join(shown[:5])}")


def build_tools(found: list[str]) -> Check:
    return Check("no-build-tools", not found, found, [], "no compiler, linker or make in the image" if not found
                 else f"found: {', '.join(found)}")


def no_secrets(found: imagefs.Scan, config: dict[str, Any], history: str, secrets: dict[str, str]) -> Check:
    meta = json.dumps(config) + history
    meta_hits = [k for k, v in secrets.items() if v in meta]
    meta_hits += [label for label, pat in imagefs.SECRET_PATTERNS.items() if pat.search(meta.encode())]
    meta_hits += [f"ENV {key} baked into the image" for key in BAKED
                  if any(e.startswith(f"{key}=") for e in config.get("Env") or [])]
    problems = found.secrets + [f"config/history: {h}" for h in meta_hits]
    return Check("no-secrets", not problems, problems[:10], [],
                 "run-time secrets and key patterns absent from layers, config and history; no .env files"
                 if not problems else "; ".join(problems[:5]))


def ownership(found: imagefs.Scan) -> Check:
    ok = not found.not_owned and not found.writable
    return Check("file-ownership", ok, {"not-owned": found.not_owned[:10], "world-writable": found.writable[:10]},
                 "none", "/app owned by appuser (1001); nothing world-writable" if ok else
                 f"not owned by 1001: {found.not_owned[:5]}; world-writable: {found.writable[:5]}")


def setuid(found: imagefs.Scan) -> Check:
    return Check("no-setuid", not found.setuid, found.setuid[:10], [],
                 "no setuid/setgid files (the runtime root drops them all)" if not found.setuid
                 else f"setuid/setgid: {', '.join(found.setuid[:5])}")


def junk(found: imagefs.Scan) -> Check:
    return Check("no-junk", not found.junk, found.junk[:10], [],
                 "no .git, tests, caches or .env under /app; no build-time mount point" if not found.junk
                 else f"found: {', '.join(found.junk[:5])}")


def vulnerabilities(contents: inventory.Inventory, image: str, opt: VerifyOptions, *, arch: str = "amd64") -> Check:
    """Every package the image ships against OSV advisories (checks.advisories), and its Debian packages
    against the bookworm-security index too. Fails on any finding with a fix, on a package that cannot be
    scanned, and when no advisory source could be had."""
    installed = {d.name: d.version for d in contents.debs}
    if contents.unreadable or not installed:  # nothing compared is not nothing vulnerable
        why = contents.unreadable or "no installed package in /var/lib/dpkg/status or status.d"
        return Check("vulnerabilities", False, [why], [],
                     f"the image's Debian packages cannot be listed ({why}): nothing could be compared with the "
                     "advisories; keep dpkg's status file in the image")
    found = advisories.scan(contents, db_path=opt.vuln_db, max_age_days=opt.vuln_db_max_age_days,
                            ignores=opt.vuln_ignores)
    try:
        index = debsec.security_index(opt.state_dir / "cache", arch)  # the image's own architecture's index
    except PipelineError as e:  # this check's own source: the tree's other checks keep their results
        return Check("vulnerabilities", False, [], [], e.message)
    pending = debsec.pending_fixes(installed, index)
    scanner = runner.installed("trivy") or runner.installed("grype")
    if scanner:
        argv = ([scanner, "image", "--severity", "CRITICAL", "--exit-code", "1", "--quiet", image]
                if scanner.endswith("trivy") else [scanner, image, "--fail-on", "critical", "-q"])
        result = runner.run(argv, ok_codes=(0, 1), stage="verify", timeout=600)
        if result.code:
            pending.append(f"{Path(scanner).name}: critical findings")
        extra = f"; {Path(scanner).name}: {'critical findings' if result.code else 'no critical findings'}"
    else:
        extra = ""
    detail = (f"{advisories.summary(found, contents)}; bookworm-security index: {len(pending)} of "
              f"{len(installed)} Debian packages with a pending fix{extra}")
    facts = {"advisory_source": found.source.name, "advisories_as_of": f"{found.source.as_of:%Y-%m-%d}"} \
        if found.source is not None else {}
    return Check("vulnerabilities", found.passed and not pending, [*advisories.values(found), *pending][:20], [],
                 detail, facts=facts)
