"""One exception root. Each error carries a one-line message that names the problem and the fix, and the
exit code of the stage it stopped."""

from __future__ import annotations

import re
from pathlib import Path

# Exit codes: 0 all green, 1 a verification check failed, 2 bad usage/input, 10+ a stage failed (which one).
EXIT_CHECKS_FAILED = 1
EXIT_USAGE = 2
STAGE_EXIT = {
    "provision": 10,
    "base": 11,
    "lint": 12,
    "build": 13,
    "push": 14,
    "verify": 15,
    "promote": 16,
    "registry": 17,
    "parity": 18,
}


class PipelineError(Exception):
    """Base of every error the pipeline reports; `stage` decides the exit code."""

    def __init__(self, message: str, *, stage: str | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage
        self.detail = detail  # e.g. the tail of a tool's output, shown under the one-line message

    @property
    def exit_code(self) -> int:
        return STAGE_EXIT.get(self.stage or "", EXIT_USAGE)


class UsageError(PipelineError):
    """Bad command-line input or project layout; nothing was changed."""

    @property
    def exit_code(self) -> int:
        return EXIT_USAGE


class ToolMissing(PipelineError):
    """An external program is not installed."""


class ToolFailed(PipelineError):
    """An external program exited non-zero; `detail` holds the tail of its output."""

    def __init__(self, message: str, *, argv: list[str], code: int, output: str, stage: str | None = None) -> None:
        super().__init__(message, stage=stage, detail=output)
        self.argv = argv
        self.code = code
        self.output = output


class LintFailed(PipelineError):
    """The Containerfile breaks a contract rule or a hadolint rule."""


def pip_failure(output: str, context: Path) -> PipelineError | None:
    """What pip's output in a failed build means, for either builder: one line naming the problem and the
    fix, or None when pip is not the cause."""
    requirements = context / "requirements.txt"
    if re.search(r"Hashes are required in --require-hashes mode|DO NOT MATCH THE HASHES", output):
        return PipelineError(f"{requirements} has a requirement without a hash or a download that does not match "
                             "its hash: regenerate it with pip-compile --generate-hashes from requirements.in",
                             stage="build", detail=output)
    unresolved = re.search(r"No matching distribution found for (\S+)", output)
    if unresolved:
        return PipelineError(f"requirements.txt names {unresolved.group(1)}, which pip cannot find: fix the name "
                             f"or version in {requirements}", stage="build", detail=output)
    return None
