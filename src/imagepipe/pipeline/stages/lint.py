"""Stage `lint`: the Containerfile checked statically against the contract, then by hadolint.

Each violation names its rule (FR-00x / NFR-002 / hadolint's DLxxxx) and its line.
"""

from __future__ import annotations

import re
from pathlib import Path

from imagepipe.errors import LintFailed
from imagepipe.exec import cmdline, runner
from imagepipe.paths import ROOT
from imagepipe.pipeline.context import Context
from imagepipe.pipeline.stages.lintrules import Violation, contract_rules
from imagepipe.ui import output


def hadolint(containerfile: Path, config: Path) -> list[Violation]:
    result = runner.run(cmdline.hadolint(containerfile, config),
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
    violations = lint(ctx.args.building.containerfile, hadolint_config=ROOT / "build/hadolint.yaml")
    for v in violations:
        output.say(f"{v.render(ctx.args.building.containerfile)}")
    if violations:
        first = violations[0]
        raise LintFailed(f"{len(violations)} Containerfile violation(s), first: line {first.line} "
                         f"{first.rule}: {first.message}", stage="lint")
    output.say("contract rules FR-001..FR-010, NFR-002 and hadolint: clean")


def display_path(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else str(path)
