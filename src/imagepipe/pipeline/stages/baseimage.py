"""Stage `base`: make sure `python:3.11-slim` (the Containerfile's literal FROM) resolves locally.

Order: an image already present; `--base-image REF` (pulled if needed, then tagged under that name); a pull
from docker.io; and when no registry is reachable (as on machines without internet registries) a faithful
stand-in built offline from the Debian archive: bookworm + its security suite, Debian's python3.11 and
venv, the C headers the official image ships, slim-style path excludes. Labelled so nobody mistakes it
for the official image.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from imagepipe.errors import PipelineError, ToolFailed
from imagepipe.exec import cmdline, runner
from imagepipe.host import emulation, podman, quirks
from imagepipe.host.profile import HostProfile
from imagepipe.image import mount
from imagepipe.image.containerfile import BASE_REF, base_ref
from imagepipe.image.platforms import Platform, host
from imagepipe.pipeline.context import Context
from imagepipe.ui import output

log = logging.getLogger("imagepipe.pipeline.stages.baseimage")

STANDIN_LABEL = "io.imagepipe.standin"
# Bumped whenever the recipe changes: an older stand-in found locally is rebuilt.
STANDIN_VERSION = "2"

DPKG_EXCLUDES = """\
# As Debian's slim images: no docs (but copyrights), man pages or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
"""


def mirrors() -> tuple[str, str]:
    """(Debian, Debian security) archive URLs, read when a stand-in is built, not at import."""
    return (os.environ.get("IMAGEPIPE_DEBIAN_MIRROR", "http://deb.debian.org/debian"),
            os.environ.get("IMAGEPIPE_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security"))


SOURCES = """\
Types: deb
URIs: {mirror}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
MULTIARCH = "import sysconfig; print(sysconfig.get_config_var('MULTIARCH'))"  # the root's own triplet
RUNTIME_PACKAGES = ["python3.11", "python3.11-venv", "python3-pip", "ca-certificates", "netbase", "tzdata"]


def standin_version(profile: HostProfile, ref: str = BASE_REF) -> str | None:
    """The stand-in recipe version of a local image, or None when it is not our stand-in."""
    facts = podman.image(profile, ref)
    return facts.labels.get(STANDIN_LABEL) if facts else None


def ensure_base(profile: HostProfile, *, state_dir: Path, override: str | None = None, rebuild: bool = False,
                platform: Platform | None = None) -> str:
    """Returns a one-line description of what python:3.11-slim now is for `platform` (default: the host's)."""
    platform = platform or host()
    ref = base_ref(platform)
    if override:
        if not podman.image_exists(profile, override) or platform.emulated:
            try:
                runner.run(cmdline.podman_pull(profile, override, platform=str(platform)), stage="base",
                           what=f"pulling {override} ({platform})")
            except ToolFailed as e:
                raise PipelineError(f"base image {override} cannot be pulled for {platform}: {e.message} "
                                    "(check the reference, or omit --base-image to use the stand-in)",
                                    stage="base") from None
        runner.run(cmdline.podman_tag(profile, override, ref), stage="base")
        return f"{override} tagged as {ref}"
    if podman.image_exists(profile, ref) and not rebuild:
        version = standin_version(profile, ref)
        if version is None:
            return f"{ref} present"
        pending = standin_pending_fixes(profile, state_dir, ref, platform) if version == STANDIN_VERSION else []
        if version == STANDIN_VERSION and not pending:
            return f"{ref} present (offline stand-in v{version}, {platform})"
        if pending:  # as the official image is republished with security updates, so is the stand-in
            log.info("the local stand-in misses %d bookworm-security fix(es) (%s): rebuilding it", len(pending),
                     ", ".join(pending[:3]))
        else:
            log.info("the local stand-in is recipe v%s, current is v%s: rebuilding", version, STANDIN_VERSION)
        rebuild = True
    if not rebuild:
        try:
            runner.run(cmdline.podman_pull(profile, BASE_REF, platform=str(platform)), stage="base", timeout=300,
                       what="pulling the base")
            if ref != BASE_REF:
                runner.run(cmdline.podman_tag(profile, BASE_REF, ref), stage="base")
            return f"{BASE_REF} pulled ({platform})"
        except ToolFailed as e:
            log.info("cannot pull %s (%s); building the offline stand-in", BASE_REF, e.message)
    build_standin(profile, state_dir=state_dir, platform=platform)
    emulated = " under emulation" if platform.emulated else ""
    return f"{ref} built as an offline stand-in from Debian bookworm ({platform}{emulated})"


def standin_pending_fixes(profile: HostProfile, state_dir: Path, ref: str = BASE_REF,
                          platform: Platform | None = None) -> list[str]:
    """bookworm-security fixes the local stand-in lacks ([] when it has them all, or when the security
    index cannot be had: the verify stage's `vulnerabilities` check then says so)."""
    from imagepipe.checks import debsec
    from imagepipe.supplychain import inventory

    try:
        index = debsec.security_index(state_dir / "cache", (platform or host()).arch)
    except PipelineError as e:
        log.info("cannot check the stand-in for security fixes: %s", e.message)
        return []
    with mount.mounted(ref) as root:
        installed = {d.name: d.version for d in inventory.debian_packages(root)}
    return debsec.pending_fixes(installed, index)


def build_standin(profile: HostProfile, *, state_dir: Path, platform: Platform | None = None) -> None:
    """debootstrap for the platform's Debian architecture; another architecture's second stage and every
    chroot step run under qemu user emulation (provision registered it; checked here again)."""
    platform = platform or host()
    if platform.emulated:
        emulation.ensure(platform.arch)
    work = Path(tempfile.mkdtemp(prefix="standin-", dir=state_dir))
    root = work / "rootfs"
    try:
        mirror, security = mirrors()
        runner.run(cmdline.debootstrap(root, mirror, arch=platform.arch), stage="base",
                   timeout=2400, what=f"debootstrap ({platform})")
        (root / "etc/dpkg/dpkg.cfg.d/slim-excludes").write_text(DPKG_EXCLUDES)
        (root / "etc/apt/sources.list").unlink(missing_ok=True)
        (root / "etc/apt/sources.list.d/debian.sources").write_text(SOURCES.format(mirror=mirror, security=security))
        env = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
        runner.run(cmdline.chroot(root, "apt-get", "update"), stage="base", env=env, timeout=600,
                   what="apt-get update")
        runner.run(cmdline.chroot(root, "apt-get", "-y", "upgrade"), stage="base", env=env, timeout=900,
                   what="apt-get upgrade (security suite)")
        runner.run(cmdline.chroot(root, "apt-get", "install", "-y", "--no-install-recommends", *RUNTIME_PACKAGES),
                   stage="base", env=env, timeout=900, what="installing python3.11")
        _add_headers(root, env)
        # As the official image: `pip` on PATH and no PEP 668 marker, so `pip install` works as root
        # (Debian's pip then installs into /usr/local, like the official image's).
        (root / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
        for link in ("python", "python3"):
            target = root / "usr/bin" / link
            target.unlink(missing_ok=True)
            target.symlink_to("python3.11")
        runner.run(cmdline.chroot(root, "apt-get", "clean"), stage="base", env=env)
        for sub in ("var/lib/apt/lists", "var/cache/apt", "var/log", "tmp", "usr/share/man", "usr/share/info",
                    "usr/share/locale"):
            _empty_dir(root / sub)
        for path in (root / "usr/share/doc").rglob("*"):
            if path.is_file() and path.name != "copyright":
                path.unlink()
        tarball = work / "rootfs.tar"
        runner.run(cmdline.tar_create(root, tarball), stage="base")
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            'CMD ["python3"]',
            f'LABEL {STANDIN_LABEL}="{STANDIN_VERSION}"',
            'LABEL org.opencontainers.image.description="STAND-IN for python:3.11-slim, built offline from '
            'Debian bookworm with Debian python3.11; not the official image"',
        ]
        runner.run(cmdline.podman_import(profile, tarball, base_ref(platform), changes=changes, arch=platform.arch),
                   stage="base", timeout=600,
                   what="importing the stand-in")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _add_headers(root: Path, env: dict[str, str]) -> None:
    """Python's C headers, as the official image has them, without the 60 MB static library of -dev."""
    debs = root / "tmp/debs"
    debs.mkdir(parents=True, exist_ok=True)
    runner.run(cmdline.chroot(root, "sh", "-c", "cd /tmp/debs && apt-get download libpython3.11-dev"),
               stage="base", env=env, what="downloading Python headers")
    deb = next(debs.glob("libpython3.11-dev_*.deb"))
    extract = root / "tmp/hdr"
    runner.run(cmdline.dpkg_deb_extract(deb, extract), stage="base")
    triplet = runner.run(cmdline.chroot(root, "python3.11", "-c", MULTIARCH), stage="base").stdout.strip()
    for sub in ("usr/include/python3.11", f"usr/include/{triplet}/python3.11"):
        dest = root / sub
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(extract / sub, dest, dirs_exist_ok=True)
    shutil.rmtree(debs)
    shutil.rmtree(extract)


def _empty_dir(path: Path) -> None:
    if path.is_dir():
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def run(ctx: Context, _: None = None) -> None:
    """The stage: the base image resolves locally for every requested platform (present, --base-image,
    pulled, or the stand-in)."""
    quirks.ensure_mount_namespace(ctx.profile)
    a = ctx.args
    for platform in a.platforms:
        output.say(ensure_base(ctx.profile, state_dir=ctx.state_dir, override=a.building.base_image,
                               rebuild=a.building.rebuild_base, platform=platform))
