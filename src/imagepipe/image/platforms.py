"""Target platforms (`--platform linux/amd64,linux/arm64`): parsed once, named the OCI way (os/arch), with
what each tool calls them (uname's machine, Debian's architecture) and whether this host runs them natively
or under qemu user emulation (imagepipe.host.emulation)."""

from __future__ import annotations

import platform as _platform
from collections.abc import Iterable
from dataclasses import dataclass

from imagepipe.errors import UsageError

# OCI architecture -> what `uname -m` says in it (Debian's architecture name is the OCI one for these two)
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}


@dataclass(frozen=True)
class Platform:
    os: str
    arch: str  # OCI and Debian: amd64, arm64

    def __str__(self) -> str:
        return f"{self.os}/{self.arch}"

    @property
    def machine(self) -> str:
        """What `uname -m` prints on it."""
        return MACHINES[self.arch]

    @property
    def slug(self) -> str:
        """For tags and file names: linux-arm64."""
        return f"{self.os}-{self.arch}"

    @property
    def emulated(self) -> bool:
        return self != host()


def host() -> Platform:
    machine = _platform.machine()
    arch = next((a for a, m in MACHINES.items() if m == machine), machine)
    return Platform("linux", arch)


def parse(text: str) -> Platform:
    parts = text.strip().split("/")
    if len(parts) == 2 and parts[0] == "linux" and parts[1] in MACHINES:
        return Platform(*parts)
    raise UsageError(f"unsupported platform {text.strip()!r}: give linux/amd64 and/or linux/arm64 "
                     "(e.g. --platform linux/amd64,linux/arm64)")


def parse_list(values: Iterable[str]) -> tuple[Platform, ...]:
    """Each --platform value may list several, comma-separated; repeats are dropped, the order is kept.
    Nothing given: the host's platform."""
    found: list[Platform] = []
    for value in values:
        for item in value.split(","):
            if item.strip():
                p = parse(item)
                if p not in found:
                    found.append(p)
    return tuple(found) or (host(),)
