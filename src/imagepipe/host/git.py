"""What git says about the tree being built: the tag an image gets, the time builds are stamped with, and
where the source lives (for the cluster's Job and for provenance)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from imagepipe.errors import PipelineError, UsageError
from imagepipe.exec import cmdline, runner
from imagepipe.image.platforms import Platform
from imagepipe.image.refs import ImageRef
from imagepipe.paths import ROOT
from imagepipe.pipeline.options import BuildingOptions, Options
from imagepipe.ui import output


def _git(*args: str, ok_codes: tuple[int, ...] = (0,)) -> str:
    return runner.run(cmdline.git(ROOT, *args), ok_codes=ok_codes).stdout.strip()


def content_hash(b: BuildingOptions) -> str:
    """Hash of the Containerfile and the context's files (what the build reads), for tags of dirty trees."""
    h = hashlib.sha256(b.containerfile.read_bytes())
    for path in sorted(b.context.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc"):
            h.update(str(path.relative_to(b.context)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:10]


def commit_time() -> int | None:
    """SOURCE_DATE_EPOCH, else the commit's time: fixed image and file timestamps make builds reproducible."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        return int(_git("log", "-1", "--format=%ct"))
    except (PipelineError, ValueError):
        return None


def git_tag(b: BuildingOptions) -> str:
    """The git short SHA; a tree that differs from the commit (or lives outside it) adds a content hash, so
    a tag never names two different images."""
    try:
        sha = _git("rev-parse", "--short=12", "HEAD")
    except PipelineError:
        return f"nogit-{content_hash(b)}"
    inside = b.context.resolve().is_relative_to(ROOT) and b.containerfile.resolve().is_relative_to(ROOT)
    dirty = _git("status", "--porcelain", "--", str(b.context.resolve()),
                 str(b.containerfile.resolve())) if inside else "outside"
    return f"{sha}-dirty-{content_hash(b)}" if dirty else sha


def local_image(args: Options, platform: Platform | None = None) -> ImageRef:
    """The local name the build stage gives this tree's image for `platform` (platform_tag)."""
    return ImageRef("localhost", args.repo, platform_tag(git_tag(args.building), platform, len(args.platforms) > 1))


def platform_tag(tag: str, platform: Platform | None, multi: bool) -> str:
    """One platform's tag: the tree's own for a single host-platform build; `-linux-arm64` appended for
    another architecture, and for every platform of a multi-platform run (the index takes the plain tag)."""
    if platform is None or not (multi or platform.emulated):
        return tag
    return f"{tag}-{platform.slug}"


def is_commit_tag(tag: str) -> bool:
    """A tag that names a commit exactly (not a dirty tree, not a tree without git)."""
    return "-dirty-" not in tag and not tag.startswith("nogit-")


def remote() -> str:
    """origin's URL, or "" when there is none."""
    return _git("remote", "get-url", "origin", ok_codes=(0, 2, 128))


def job_source(url: str | None = None) -> tuple[str, str]:
    """(the repository the cluster's Job fetches from, the exact commit it builds): `url`, else origin's;
    HEAD's commit id. A tree with uncommitted changes is built as committed, and says so."""
    try:
        commit = _git("rev-parse", "HEAD")
        url = url or remote()
    except PipelineError as e:
        why = str(e.detail or e.message)
        if "dubious ownership" in why:  # git refuses a checkout another user made (a pod's clone step)
            raise UsageError(f"git refuses the checkout {ROOT}: another user owns it; mark it safe (git config "
                             f"--global --add safe.directory {ROOT}, or GIT_CONFIG_* in the environment)") from None
        raise UsageError("--kube-context builds a commit: run it in a git repository") from None
    if not url:
        raise UsageError("--kube-context builds from git: pass --git-url URL (a repository the cluster can fetch "
                         "from), or give this repository a remote `origin`")
    if _git("status", "--porcelain", "--untracked-files=no"):
        output.say(f"the Job builds commit {commit[:12]} as committed: uncommitted changes are not in it")
    return url, commit


def in_commit(path: Path) -> str | None:
    """`path` relative to the checkout when HEAD's commit holds it (a file, or a directory with files), so a
    clone of that commit has it too; None when it does not (outside the checkout, or untracked); a git that
    cannot answer is a UsageError with git's own words."""
    resolved = path.resolve()
    if not resolved.is_relative_to(ROOT):
        return None
    relative = str(resolved.relative_to(ROOT))
    try:
        held = _git("ls-tree", "-r", "--name-only", "HEAD", "--", relative)
    except PipelineError as e:  # git itself refused (no repository, another user's checkout): say so
        raise UsageError(f"cannot tell whether {path} is in commit HEAD: git says "
                         f"{runner.first_error_line(str(e.detail or '')) or e.message}") from None
    return relative if held else None


def provenance_source() -> tuple[str, str]:
    """(where the source lives, the commit) for provenance; a tree without git is named by its path."""
    try:
        commit = _git("rev-parse", "HEAD")
    except PipelineError:
        return f"file://{ROOT}", "none"
    url = remote()
    return (f"git+{url}" if url else f"git+file://{ROOT}"), commit
