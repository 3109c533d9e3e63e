"""A Containerfile as data: its instructions (parsed by dockerfile-parse, the parser OpenShift's tooling
uses), grouped into build stages. lint reads it; nothing here knows the contract's rules."""

from __future__ import annotations

import io
import re
import shlex
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser

from imagepipe.image.platforms import Platform

# The recipe's literal FROM (the contract's); the base stage makes it resolve.
BASE_REF = "docker.io/library/python:3.11-slim"
# Another architecture's base, kept under its own local name (one name holds one image here); buildah takes
# it in place of the first FROM (`--from`), so the Containerfile stays the same for every platform.
FOREIGN_BASE = "localhost/imagepipe/python"


def base_ref(platform: Platform) -> str:
    """The local image that is python:3.11-slim for `platform`: the literal name for the host's own."""
    return BASE_REF if not platform.emulated else f"{FOREIGN_BASE}:3.11-slim-{platform.slug}"

KNOWN = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
         "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}


class ParseError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str

    def flags_and_words(self) -> tuple[dict[str, str], list[str]]:
        """`--chown=a:b --from=x src dest` -> ({'chown': 'a:b', 'from': 'x'}, ['src', 'dest'])."""
        flags: dict[str, str] = {}
        words: list[str] = []
        body = self.args.strip()
        if body.startswith("["):  # JSON form
            return flags, re.findall(r'"((?:[^"\\]|\\.)*)"', body)
        for word in shlex.split(body, posix=True):
            if word.startswith("--") and not words:
                key, _, value = word[2:].partition("=")
                flags[key.lower()] = value
            else:
                words.append(word)
        return flags, words


@dataclass
class Stage:
    index: int
    image: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def find(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> list[Instruction]:
    """The instructions in order, each with its first line (1-based); comments dropped."""
    lines = [raw.strip() for raw in text.splitlines()]
    code = [(n, s) for n, s in enumerate(lines, start=1) if s and not s.startswith("#")]
    if code and code[-1][1].endswith("\\"):
        # dockerfile-parse drops a dangling last instruction silently; buildah refuses it
        start = code[-1][0]
        while start > 1 and lines[start - 2].endswith("\\"):
            start -= 1
        raise ParseError(start, "the last instruction ends with a line continuation")
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), cache_content=False)
    out: list[Instruction] = []
    for item in parser.structure:
        keyword = str(item["instruction"]).upper()
        if keyword == "COMMENT":
            continue
        line = int(item["startline"]) + 1
        if keyword not in KNOWN:
            raise ParseError(line, f"unknown instruction {str(item['instruction'])!r}")
        out.append(Instruction(line, keyword, str(item["value"]).strip()))
    return out


def stages(instructions: list[Instruction]) -> list[Stage]:
    result: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            if not words:
                raise ParseError(ins.line, "FROM without an image")
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            result.append(Stage(len(result), words[0], name, ins.line))
        elif ins.keyword == "ARG" and not result:
            continue
        elif not result:
            raise ParseError(ins.line, f"{ins.keyword} before the first FROM")
        else:
            result[-1].instructions.append(ins)
    if not result:
        raise ParseError(1, "no FROM instruction")
    return result


def stage_by_ref(all_stages: list[Stage], ref: str) -> Stage | None:
    """The stage `COPY --from=ref` names: by its name or its index."""
    for st in all_stages:
        if st.name == ref or str(st.index) == ref:
            return st
    return None
