"""Contract lint: the real Containerfile is clean; each deliberately broken variant names its rule and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagepipe.paths import ROOT
from imagepipe.pipeline.stages import lint

CONTAINERFILE = Path(__file__).resolve().parents[2] / "build/Containerfile"
GOOD = CONTAINERFILE.read_text()


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), start=1) if needle in ln)


def test_our_containerfile_is_clean():
    assert lint.contract_rules(GOOD) == []


def test_hadolint_is_clean_with_our_config():
    assert lint.hadolint(CONTAINERFILE, CONTAINERFILE.parent / "hadolint.yaml") == []


RUNNER = "FROM scratch AS runner"  # what is missing from the final stage is named at its FROM line


# `at`: text of the line every violation of the rule must name, in the broken file
@pytest.mark.parametrize(("old", "new", "rule", "at"), [
    ("USER appuser", "USER root", "FR-004", "USER root"),
    ("USER appuser", "", "FR-004", RUNNER),
    ("FROM python:3.11-slim AS builder", "FROM python:latest AS builder", "FR-001", "FROM python:latest AS builder"),
    ("FROM python:3.11-slim AS builder", "FROM python AS builder", "FR-001", "FROM python AS builder"),
    ("EXPOSE 8000", "EXPOSE 8080", "FR-005", RUNNER),
    ("HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \\\n  CMD [\"python\", "
     "\"/app/app/healthcheck.py\"]", "", "FR-006", RUNNER),
    ('ENV PATH="/opt/venv/bin:/usr/local/sbin', 'ENV PATH="/usr/local/sbin', "FR-007", RUNNER),
    ("COPY --chown=appuser:appuser ./mcp ./mcp", "", "FR-009", RUNNER),
    ("COPY --chown=appuser:appuser ./agents ./agents", "COPY ./agents ./agents", "FR-009", "COPY ./agents ./agents"),
    ('CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000", "--timeout-graceful-shutdown", "8"]',
     'CMD ["gunicorn", "app:app"]',
     "FR-010", RUNNER),
    ("COPY requirements.txt /tmp/requirements.txt", "COPY . /src\nCOPY requirements.txt /tmp/requirements.txt",
     "NFR-002", "COPY . /src"),
    ("COPY --from=builder /rootfs/ /", "COPY --from=bulider /rootfs/ /", "SYNTAX", "COPY --from=bulider"),
    ("ARG WHEELHOUSE=none", "ARGG WHEELHOUSE=none", "SYNTAX", "ARGG WHEELHOUSE=none"),
])
def test_broken_variants_fail_with_rule_and_line(old, new, rule, at):
    assert old in GOOD, old
    broken = GOOD.replace(old, new, 1)
    violations = lint.contract_rules(broken)
    hits = [v for v in violations if v.rule == rule]
    assert hits and all(v.message for v in hits), violations
    assert {v.line for v in hits} == {line_of(broken, at)}, hits


def test_render_names_file_line_and_rule():
    v = lint.Violation("FR-004", 12, "USER is root")
    assert v.render(Path("build/Containerfile")) == "build/Containerfile:12: FR-004: USER is root"


def test_no_architecture_literal_in_the_recipe():
    """The Containerfile and the pruner take the multiarch triplet from the build's own interpreter, so
    the same recipe builds linux/amd64 and linux/arm64."""
    import re

    literal = re.compile(r"x86_64|amd64|aarch64|arm64|i386|armhf")
    for path in (ROOT / "build/Containerfile", ROOT / "backend/imagebuild/prune_rootfs.py"):
        code = [ln.split("#", 1)[0] for ln in path.read_text().splitlines()]
        found = [ln for ln in code if literal.search(ln)]
        assert not found, f"{path.name}: {found}"
