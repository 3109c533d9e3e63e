"""What a failed kaniko run means, for the local run and the Job alike. The cause is read from kaniko's own
error line (the last thing it prints before it exits: `error building image: …`, `error pushing image: …`,
`error checking push permissions: …`), never from any word in the log: a RUN step's output is not kaniko's
(apt prints `pkgAcquire::Run (13: Permission denied)` on every build of this Containerfile)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

ANSI = re.compile(r"\x1b\[[0-9;]*m")  # kaniko colours its log lines
KANIKO_ERROR = re.compile(r"^error [a-z][a-z ]*: ")  # the executor exits printing fmt.Errorf("error …: %w")
AUTH = re.compile(r"UNAUTHORIZED|authentication required|401 Unauthorized|\bDENIED\b", re.I)
RUN_STEP = "failed to execute command"  # a RUN's process exited non-zero


@dataclass(frozen=True)
class Failure:
    kind: str  # "run-step", "credentials" or "other"
    line: str  # kaniko's error line, without colour codes


def clean(text: str) -> str:
    return ANSI.sub("", text)


def kaniko_error(lines: Iterable[str]) -> str:
    """kaniko's own last error line; else the last line that mentions an error (a log cut short)."""
    cleaned = [clean(ln).strip() for ln in lines]
    own = [ln for ln in cleaned if KANIKO_ERROR.match(ln)]
    if own:
        return own[-1]
    return next((ln for ln in reversed(cleaned) if "error" in ln.lower()), "")


def classify(lines: Iterable[str]) -> Failure:
    line = kaniko_error(lines)
    if RUN_STEP in line:
        return Failure("run-step", line)
    if AUTH.search(line):  # a push, the push-permission check or a base pull, refused by the registry
        return Failure("credentials", line)
    return Failure("other", line)
