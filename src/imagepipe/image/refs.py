"""Image references as values: parsed once by the distribution reference grammar
(github.com/distribution/reference, what podman, buildah, skopeo and registries accept) and passed between
stages instead of strings split by hand."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from imagepipe.errors import UsageError

# The grammar's pieces, as in distribution/reference's regexp.go.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
REPOSITORY = rf"{PATH_COMPONENT}(?:/{PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
TAG = r"[\w][\w.-]{0,127}"
DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^(?P<name>(?:{DOMAIN}/)?{REPOSITORY})(?::(?P<tag>{TAG}))?(?:@(?P<digest>{DIGEST}))?$")
NAME_MAX = 255


class InvalidReference(UsageError):
    """Text that is not an image reference."""


@dataclass(frozen=True)
class ImageRef:
    """`[registry/]repository[:tag][@digest]`; `registry` is None when the reference names none."""

    registry: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        m = _REFERENCE.match(text)
        if not m or len(m.group("name")) > NAME_MAX:
            raise InvalidReference(f"invalid image reference {text!r}: use [REGISTRY/]REPOSITORY[:TAG][@sha256:…] "
                                   "with a lowercase repository (e.g. 127.0.0.1:5000/todo-backend@sha256:…)")
        name = m.group("name")
        first, _, rest = name.partition("/")
        # As distribution's normalisation: the first component is a registry when it looks like a host.
        if rest and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
            registry, repository = first, rest
        else:
            registry, repository = None, name
        return cls(registry, repository, m.group("tag"), m.group("digest"))

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    def with_tag(self, tag: str) -> ImageRef:
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> ImageRef:
        return replace(self, tag=None, digest=digest)

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def is_repository(text: str) -> bool:
    return re.fullmatch(REPOSITORY, text) is not None and len(text) <= NAME_MAX


def is_tag(text: str) -> bool:
    return re.fullmatch(TAG, text) is not None


def is_registry(text: str) -> bool:
    """HOST, HOST:PORT, [IPv6] or [IPv6]:PORT, with a TCP port."""
    port = re.search(r"(?<!:):(\d+)$", text) if not text.endswith("]") else None
    return re.fullmatch(DOMAIN, text) is not None and (port is None or 0 < int(port.group(1)) < 65536)


@dataclass
class Step:
    """One Containerfile instruction's build time (imagepipe.builders.buildsteps reads them)."""

    stage: int
    instruction: str
    seconds: float = 0.0
    cached: bool = False

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 2)
        d["instruction"] = self.instruction if len(self.instruction) <= 100 else self.instruction[:99] + "…"
        return d


@dataclass(frozen=True)
class BuildFacts:
    """What a build reports about itself: per-step timings, its wall-clock window, the builder's version."""

    builder: str
    builder_version: str = "unknown"
    steps: tuple[Step, ...] = ()
    started: float = 0.0
    finished: float = 0.0
    cluster: dict[str, Any] | None = None  # a Job's name, pod, node, pulled images and phases (--kube-context)
    platform: str | None = None  # os/arch built for (None: the host's, not recorded)
    emulated: bool = False  # built under qemu user emulation


@dataclass(frozen=True)
class BuiltImage:
    """A local image (buildah's build stage); not yet in a registry."""

    ref: ImageRef
    facts: BuildFacts


@dataclass(frozen=True)
class PushedImage:
    """An image in a registry, named by digest; `tag` is the tag it was pushed under (None when it was
    named by digest from outside, as `verify REF@sha256:…`)."""

    ref: ImageRef
    tag: str | None = None
    facts: BuildFacts | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.ref.digest is None or self.ref.registry is None:
            raise InvalidReference(f"{self.ref} is not a pushed image: name it as REGISTRY/REPOSITORY@sha256:…")

    @property
    def digest(self) -> str:
        assert self.ref.digest is not None  # checked in __post_init__
        return self.ref.digest

    @property
    def registry(self) -> str:
        assert self.ref.registry is not None
        return self.ref.registry

    def __str__(self) -> str:
        return str(self.ref)
