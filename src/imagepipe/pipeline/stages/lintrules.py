"""The contract's rules for the Containerfile (FR-001…FR-010, NFR-002), one function per rule, each reading
the parsed file and naming the line it objects to."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from imagepipe.image.containerfile import ParseError, Stage, parse, stage_by_ref, stages
from imagepipe.image.refs import ImageRef, InvalidReference

BASE = "python:3.11-slim"
BASE_NAMES = {BASE, f"docker.io/library/{BASE}", f"library/{BASE}"}
SOURCE_DIRS = ("app", "agents", "mcp")


@dataclass(frozen=True)
class Violation:
    rule: str
    line: int
    message: str

    def render(self, path: Path) -> str:
        return f"{path}:{self.line}: {self.rule}: {self.message}"


@dataclass(frozen=True)
class Parsed:
    """What the rules read: the stages in order, the final (runner) one, the stage names, the builder."""

    text: str
    all_stages: list[Stage]
    final: Stage
    names: set[str]
    builder: Stage | None


def copy_from_names_a_stage(f: Parsed, v: list[Violation]) -> None:
    """COPY --from must name an earlier stage (or an image, which we refuse: it bypasses the base rule)."""
    all_stages = f.all_stages
    names = f.names
    for st in all_stages:
        for ins in st.find("COPY"):
            flags, _ = ins.flags_and_words()
            ref = flags.get("from")
            if ref is not None:
                src = stage_by_ref(all_stages, ref)
                if src is None or src.index >= st.index:
                    v.append(Violation("SYNTAX", ins.line, f"COPY --from={ref} names no earlier stage "
                                       f"(stages: {', '.join(sorted(names)) or 'unnamed'})"))


def fr001_base_image(f: Parsed, v: list[Violation]) -> None:
    """FR-001: every image a stage starts from is python:3.11-slim; `scratch` only when filled from stages."""
    all_stages = f.all_stages
    final = f.final
    names = f.names
    for st in all_stages:
        image = st.image
        if image in names or image.isdigit():
            continue
        if image == "scratch":
            if st is not final or not any(i.flags_and_words()[0].get("from") for i in st.find("COPY")):
                v.append(Violation("FR-001", st.line, "a scratch stage must be the runner and be filled "
                                   f"from {BASE} stages"))
            continue
        if image.split("@")[0] not in BASE_NAMES:
            v.append(Violation("FR-001", st.line, f"stage starts FROM {image}; the contract requires {BASE}"))


def fr002_multi_stage(f: Parsed, v: list[Violation]) -> None:
    """FR-002: multi-stage, builder -> runner."""
    all_stages = f.all_stages
    final = f.final
    builder = f.builder
    if len(all_stages) < 2 or builder is None:
        v.append(Violation("FR-002", all_stages[0].line, "needs a multi-stage build with a stage named builder"))
    elif not any(i.flags_and_words()[0].get("from") for i in final.find("COPY")):
        v.append(Violation("FR-002", final.line, "the final stage copies nothing from the builder stages"))


def fr004_non_root_user(f: Parsed, v: list[Violation]) -> None:
    """FR-004: non-root appuser with UID 1001."""
    final = f.final
    text = f.text
    users = final.find("USER")
    if not users:
        v.append(Violation("FR-004", final.line, "the final stage has no USER: it would run as root"))
    else:
        user = users[-1].args.split(":")[0].strip()
        if user in ("root", "0"):
            v.append(Violation("FR-004", users[-1].line, "USER is root; the contract requires appuser (UID 1001)"))
        elif user not in ("appuser", "1001"):
            v.append(Violation("FR-004", users[-1].line, f"USER {user}; the contract requires appuser (UID 1001)"))
    if not re.search(r"useradd\b[^\n;&]*(-u|--uid)\s*1001\b[^\n;&]*\bappuser\b", text):
        v.append(Violation("FR-004", final.line, "no `useradd ... --uid 1001 ... appuser` creates the user"))


def fr005_port(f: Parsed, v: list[Violation]) -> None:
    """FR-005: EXPOSE 8000."""
    final = f.final
    if not any("8000" in i.args.split() or "8000/tcp" in i.args.split() for i in final.find("EXPOSE")):
        v.append(Violation("FR-005", final.line, "the final stage does not EXPOSE 8000"))


def fr006_healthcheck(f: Parsed, v: list[Violation]) -> None:
    """FR-006: a HEALTHCHECK that is not NONE."""
    final = f.final
    checks = final.find("HEALTHCHECK")
    if not checks or checks[-1].args.strip().upper() == "NONE":
        v.append(Violation("FR-006", final.line, "the final stage has no HEALTHCHECK"))


def fr007_venv(f: Parsed, v: list[Violation]) -> None:
    """FR-007: a virtual environment built in the builder and on the runner's PATH."""
    final = f.final
    builder = f.builder
    makes_venv = re.compile(r"-m\s+venv\s+(?:--[\w-]+\s+)*/opt/venv")
    if builder is not None and not any(makes_venv.search(i.args) for i in builder.find("RUN")):
        v.append(Violation("FR-007", builder.line, "the builder does not create /opt/venv with `python -m venv`"))
    if not any("/opt/venv/bin" in i.args for i in final.find("ENV")):
        v.append(Violation("FR-007", final.line, "the final stage does not put /opt/venv/bin on PATH"))


def fr008_postgres_client(f: Parsed, v: list[Violation]) -> None:
    """FR-008: the PostgreSQL client is installed (or unpacked from its package) somewhere and reaches the
    runner (verify runs psql)."""
    all_stages = f.all_stages
    text = f.text
    if not re.search(r"apt-get (?:install|download)[^\n]*postgresql-client", text):
        v.append(Violation("FR-008", all_stages[0].line, "no stage installs postgresql-client"))


def fr009_sources_owned(f: Parsed, v: list[Violation]) -> None:
    """FR-009: app/, agents/, mcp/ copied into the final stage with ownership."""
    final = f.final
    copies = [(i, i.flags_and_words()) for i in final.find("COPY")]
    for d in SOURCE_DIRS:
        hit = [(i, f) for i, (f, w) in copies if not f.get("from") and any(x.rstrip("/") in (d, f"./{d}")
                                                                          for x in w[:-1])]
        if not hit:
            v.append(Violation("FR-009", final.line, f"the final stage does not COPY {d}/"))
        elif not all(f.get("chown") for _, f in hit):
            v.append(Violation("FR-009", hit[0][0].line, f"COPY of {d}/ lacks --chown=appuser:appuser"))


def fr010_uvicorn(f: Parsed, v: list[Violation]) -> None:
    """FR-010: uvicorn serves app.main:app."""
    final = f.final
    cmds = final.find("CMD") + final.find("ENTRYPOINT")
    if not any("uvicorn" in i.args and "app.main:app" in i.args for i in cmds):
        v.append(Violation("FR-010", final.line, "CMD/ENTRYPOINT does not run uvicorn app.main:app"))


def nfr002_layer_order(f: Parsed, v: list[Violation]) -> None:
    """NFR-002: requirements.txt is copied and installed before any source is copied."""
    all_stages = f.all_stages
    for st in all_stages:
        # a stage that never copies requirements.txt (the runner: they were installed in the builder) is fine
        req_line = next((i.line for i in st.find("COPY") if "requirements.txt" in i.args), None)
        for ins in st.find("COPY"):
            flags, words = ins.flags_and_words()
            if flags.get("from") or req_line is None or ins.line > req_line:
                continue
            if any(s.rstrip("/") in (".", "./") or s.strip("./") in SOURCE_DIRS for s in words[:-1]):
                v.append(Violation("NFR-002", ins.line, "source is copied before requirements.txt is "
                                   "installed: every code change would reinstall dependencies"))
    pip_lines = [i.line for st in all_stages for i in st.find("RUN") if "pip install" in i.args]
    req_lines = [i.line for st in all_stages for i in st.find("COPY") if "requirements.txt" in i.args]
    if not req_lines:
        v.append(Violation("NFR-002", all_stages[0].line, "requirements.txt is never copied on its own"))
    elif pip_lines and min(pip_lines) < min(req_lines):
        v.append(Violation("NFR-002", min(pip_lines), "pip install runs before requirements.txt is copied"))


def fr001_pinned_tags(f: Parsed, v: list[Violation]) -> None:
    """Base images must not float: `:latest` or no tag."""
    all_stages = f.all_stages
    names = f.names
    for st in all_stages:
        if st.image not in names and st.image != "scratch" and not st.image.isdigit():
            try:
                ref = ImageRef.parse(st.image)
            except InvalidReference:
                v.append(Violation("FR-001", st.line, f"base image {st.image} is not an image reference"))
                continue
            if ref.digest is None and ref.tag in (None, "latest"):
                v.append(Violation("FR-001", st.line, f"base image {st.image} has no fixed tag"))


RULES = (
    copy_from_names_a_stage, fr001_base_image, fr002_multi_stage, fr004_non_root_user, fr005_port,
    fr006_healthcheck, fr007_venv, fr008_postgres_client, fr009_sources_owned, fr010_uvicorn, nfr002_layer_order,
    fr001_pinned_tags,
)


def contract_rules(text: str) -> list[Violation]:
    """The contract's FR-001..FR-010 and NFR-002, checked on the parsed file (each rule a function above)."""
    try:
        all_stages = stages(parse(text))
    except ParseError as e:
        return [Violation("SYNTAX", e.line, str(e).split(": ", 1)[1])]
    parsed = Parsed(text, all_stages, all_stages[-1], {s.name for s in all_stages if s.name},
                    next((s for s in all_stages if s.name == "builder"), None))
    v: list[Violation] = []
    for rule in RULES:
        rule(parsed, v)
    return sorted(set(v), key=lambda x: (x.line, x.rule))


