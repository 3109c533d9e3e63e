"""Running other architectures' binaries here (linux/arm64 images under qemu user emulation): binfmt_misc
mounted and Debian's qemu-user-static handlers registered with the fix-binary flag (F), so arm64 programs
run inside containers and chroots without qemu copied in. Facts are read from /proc; set-up is idempotent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imagepipe.errors import PipelineError
from imagepipe.exec import runner

BINFMT = Path("/proc/sys/fs/binfmt_misc")
# Debian architecture -> qemu's handler name (what update-binfmts enables)
HANDLERS = {"arm64": "qemu-aarch64", "amd64": "qemu-x86_64"}


@dataclass(frozen=True)
class Handler:
    enabled: bool
    fix_binary: bool


def parse_handler(text: str) -> Handler:
    """A /proc/sys/fs/binfmt_misc/<name> entry: 'enabled', then 'flags: PF', …"""
    lines = text.splitlines()
    flags = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("flags:")), "")
    return Handler(enabled=bool(lines) and lines[0].strip() == "enabled", fix_binary="F" in flags)


def mounted() -> bool:
    return (BINFMT / "register").exists()


def handler(arch: str) -> Handler | None:
    entry = BINFMT / HANDLERS.get(arch, f"qemu-{arch}")
    return parse_handler(entry.read_text()) if entry.exists() else None


def ensure(arch: str) -> bool:
    """binfmt_misc mounted and `arch`'s handler enabled with the F flag; True when something changed."""
    changed = False
    if not mounted():
        runner.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], stage="provision",
                   what="mounting binfmt_misc")
        changed = True
    found = handler(arch)
    if found is None or not found.enabled:
        runner.run(["update-binfmts", "--enable", HANDLERS.get(arch, f"qemu-{arch}")], stage="provision",
                   what=f"registering the {arch} emulator")
        found, changed = handler(arch), True
    if found is None or not found.fix_binary:
        raise PipelineError(f"the {arch} emulator is registered without the fix-binary flag (F): containers cannot "
                            f"run {arch} programs; reinstall qemu-user-static (Debian registers it with F)",
                            stage="provision")
    return changed


def require(arch: str, *, stage: str) -> None:
    """A stage that runs `arch` programs checks the set-up provision made, without changing the host."""
    found = handler(arch) if mounted() else None
    if found is None or not found.enabled or not found.fix_binary:
        raise PipelineError(f"{arch} programs cannot run here: binfmt_misc's {HANDLERS.get(arch, arch)} handler "
                            "is not registered with the fix-binary flag; run `python3 build/pipeline.py provision` "
                            "(it installs qemu-user-static and registers it)", stage=stage)
