"""Stage `lint`: the Containerfile checked statically against the contract, then by hadolint.

Each violation names its rule (FR-00x / NFR-002 / hadolint's DLxxxx) and its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from imagepipe import commands, runner
from imagepipe.containerfile import ParseError, parse, stage_by_ref, stages
from imagepipe.context import Context
from imagepipe.errors import LintFailed
from imagepipe.paths import ROOT

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


def contract_rules(text: str) -> list[Violation]:
    """The contract's FR-001..FR-010 and NFR-002, checked on the parsed file."""
    try:
        all_stages = stages(parse(text))
    except ParseError as e:
        return [Violation("SYNTAX", e.line, str(e).split(": ", 1)[1])]
    v: list[Violation] = []
    final = all_stages[-1]
    names = {s.name for s in all_stages if s.name}

    # COPY --from must name an earlier stage (or an image, which we refuse: it bypasses the base rule).
    for st in all_stages:
        for ins in st.find("COPY"):
            flags, _ = ins.flags_and_words()
            ref = flags.get("from")
            if ref is not None:
                src = stage_by_ref(all_stages, ref)
                if src is None or src.index >= st.index:
                    v.append(Violation("SYNTAX", ins.line, f"COPY --from={ref} names no earlier stage "
                                       f"(stages: {', '.join(sorted(names)) or 'unnamed'})"))

    # FR-001: every image a stage starts from is python:3.11-slim; `scratch` only when filled from stages.
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

    # FR-002: multi-stage, builder -> runner.
    builder = next((s for s in all_stages if s.name == "builder"), None)
    if len(all_stages) < 2 or builder is None:
        v.append(Violation("FR-002", all_stages[0].line, "needs a multi-stage build with a stage named builder"))
    elif not any(i.flags_and_words()[0].get("from") for i in final.find("COPY")):
        v.append(Violation("FR-002", final.line, "the final stage copies nothing from the builder stages"))

    # FR-004: non-root appuser with UID 1001.
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

    # FR-005: EXPOSE 8000.
    if not any("8000" in i.args.split() or "8000/tcp" in i.args.split() for i in final.find("EXPOSE")):
        v.append(Violation("FR-005", final.line, "the final stage does not EXPOSE 8000"))

    # FR-006: a HEALTHCHECK that is not NONE.
    checks = final.find("HEALTHCHECK")
    if not checks or checks[-1].args.strip().upper() == "NONE":
        v.append(Violation("FR-006", final.line, "the final stage has no HEALTHCHECK"))

    # FR-007: a virtual environment built in the builder and on the runner's PATH.
    makes_venv = re.compile(r"-m\s+venv\s+(?:--[\w-]+\s+)*/opt/venv")
    if builder is not None and not any(makes_venv.search(i.args) for i in builder.find("RUN")):
        v.append(Violation("FR-007", builder.line, "the builder does not create /opt/venv with `python -m venv`"))
    if not any("/opt/venv/bin" in i.args for i in final.find("ENV")):
        v.append(Violation("FR-007", final.line, "the final stage does not put /opt/venv/bin on PATH"))

    # FR-008: the PostgreSQL client is installed (or unpacked from its package) somewhere and reaches the
    # runner (verify runs psql).
    if not re.search(r"apt-get (?:install|download)[^\n]*postgresql-client", text):
        v.append(Violation("FR-008", all_stages[0].line, "no stage installs postgresql-client"))

    # FR-009: app/, agents/, mcp/ copied into the final stage with ownership.
    copies = [(i, i.flags_and_words()) for i in final.find("COPY")]
    for d in SOURCE_DIRS:
        hit = [(i, f) for i, (f, w) in copies if not f.get("from") and any(x.rstrip("/") in (d, f"./{d}")
                                                                          for x in w[:-1])]
        if not hit:
            v.append(Violation("FR-009", final.line, f"the final stage does not COPY {d}/"))
        elif not all(f.get("chown") for _, f in hit):
            v.append(Violation("FR-009", hit[0][0].line, f"COPY of {d}/ lacks --chown=appuser:appuser"))

    # FR-010: uvicorn serves app.main:app.
    cmds = final.find("CMD") + final.find("ENTRYPOINT")
    if not any("uvicorn" in i.args and "app.main:app" in i.args for i in cmds):
        v.append(Violation("FR-010", final.line, "CMD/ENTRYPOINT does not run uvicorn app.main:app"))

    # NFR-002: requirements.txt is copied and installed before any source is copied.
    for st in all_stages:
        req_line = next((i.line for i in st.find("COPY") if "requirements.txt" in i.args), None)
        for ins in st.find("COPY"):
            flags, words = ins.flags_and_words()
            if flags.get("from"):
                continue
            sources = words[:-1]
            if any(s.rstrip("/") in (".", "./") or s.strip("./") in SOURCE_DIRS for s in sources):
                if any(st2.index < st.index for st2 in all_stages) or req_line is None or ins.line < req_line:
                    if req_line is None and st is final and builder is not None:
                        continue  # requirements are installed in the builder, which the final stage follows
                    if req_line is not None and ins.line < req_line:
                        v.append(Violation("NFR-002", ins.line, "source is copied before requirements.txt is "
                                           "installed: every code change would reinstall dependencies"))
    pip_lines = [i.line for st in all_stages for i in st.find("RUN") if "pip install" in i.args]
    req_lines = [i.line for st in all_stages for i in st.find("COPY") if "requirements.txt" in i.args]
    if not req_lines:
        v.append(Violation("NFR-002", all_stages[0].line, "requirements.txt is never copied on its own"))
    elif pip_lines and min(pip_lines) < min(req_lines):
        v.append(Violation("NFR-002", min(pip_lines), "pip install runs before requirements.txt is copied"))

    # Base images must not float: `:latest` or no tag.
    for st in all_stages:
        if st.image not in names and st.image != "scratch" and not st.image.isdigit():
            tag = st.image.rsplit("/", 1)[-1]
            if ":" not in tag and "@" not in tag or tag.endswith(":latest"):
                v.append(Violation("FR-001", st.line, f"base image {st.image} has no fixed tag"))
    return sorted(set(v), key=lambda x: (x.line, x.rule))


def hadolint(containerfile: Path, config: Path) -> list[Violation]:
    result = runner.run(commands.hadolint(containerfile, config),
                        ok_codes=(0, 1), stage="lint", what="hadolint")
    found = []
    for line in result.stdout.splitlines():
        m = re.match(r"^.*?:(\d+) (\S+) (\w+): (.*)$", line)
        if m and m.group(3) in ("error", "warning"):
            found.append(Violation(m.group(2), int(m.group(1)), f"{m.group(3)}: {m.group(4)}"))
    return found


def lint(containerfile: Path, *, hadolint_config: Path | None = None) -> list[Violation]:
    violations = contract_rules(containerfile.read_text())
    if hadolint_config is not None and not any(x.rule == "SYNTAX" for x in violations):
        violations += hadolint(containerfile, hadolint_config)
    return violations


def run(ctx: Context, _: None = None) -> None:
    """The stage: contract rules, then hadolint; every violation printed, the first one named in the error."""
    violations = lint(ctx.args.containerfile, hadolint_config=ROOT / "build/hadolint.yaml")
    for v in violations:
        print(f"    {v.render(ctx.args.containerfile)}")
    if violations:
        first = violations[0]
        raise LintFailed(f"{len(violations)} Containerfile violation(s), first: line {first.line} "
                         f"{first.rule}: {first.message}", stage="lint")
    print("    contract rules FR-001..FR-010, NFR-002 and hadolint: clean")


def display_path(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else str(path)
