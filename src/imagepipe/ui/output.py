"""The one output path. Everything the pipeline says goes through the `imagepipe` logger, and this module
configures it once (cli.main): progress to stdout, the error line and its detail to stderr.

- default: stage lines (`==> stage: what`), their indented progress lines, tables and results;
- `--verbose`: also debug lines (each tool's argv and streamed output, verify's phases);
- `--quiet`: warnings and errors only (the exit code says the rest);
- `--json`: one JSON object per line on stdout, {"time", "level", "stage", "kind", "message"}, for CI.

`stage()` writes a stage line, `say()` an indented line under it, `block()` a table or report as it is,
`warn()` and `error()` what went wrong. Modules that log with `logging.getLogger("imagepipe…")` land in
the same stream."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

log = logging.getLogger("imagepipe")
CURRENT_STAGE = ["start-up"]  # set by the stage table as each stage starts (the JSON events carry it)


class TextFormat(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        kind = getattr(record, "kind", "say")
        if kind in ("stage", "block", "error"):
            return message
        if record.levelno >= logging.WARNING and kind == "say" and not message.startswith(("warning", "WARNING")):
            message = f"warning: {message}"
        return "    " + message.replace("\n", "\n    ")


class JsonFormat(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"time": round(time.time(), 3), "level": record.levelname.lower(),
                           "stage": CURRENT_STAGE[0], "kind": getattr(record, "kind", "say"),
                           "message": record.getMessage()})


class OursOrWarnings(logging.Filter):
    """Below WARNING, only the pipeline's own loggers speak (without --verbose): a library's INFO lines, such as
    the MCP client's `HTTP Request: POST …` through httpx2, whatever its logger's name, never reach the output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name == "imagepipe" or record.name.startswith("imagepipe.")


class ErrorsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "kind", "") == "error"


class NotErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "kind", "") != "error"


def configure(*, verbose: bool = False, quiet: bool = False, as_json: bool = False) -> None:
    """One switch each: the level, and text or JSON events."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "imagepipe", False):  # ours from an earlier call (others', e.g. pytest's, stay)
            root.removeHandler(handler)
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    progress = logging.StreamHandler(sys.stdout)
    progress.setFormatter(JsonFormat() if as_json else TextFormat())
    errors = logging.StreamHandler(sys.stderr)
    errors.setFormatter(JsonFormat() if as_json else TextFormat())
    if as_json:
        handlers: list[logging.Handler] = [progress]  # one stream of events
    else:
        progress.addFilter(NotErrors())
        errors.addFilter(ErrorsOnly())
        handlers = [progress, errors]
    for handler in handlers:
        handler.imagepipe = True  # type: ignore[attr-defined]
        if not verbose:
            handler.addFilter(OursOrWarnings())
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "sh", "pyinfra", "httpx", "httpcore", "httpx2", "httpcore2", "mcp"):  # even with --verbose
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _emit(level: int, kind: str, message: str, **extra: Any) -> None:
    log.log(level, "%s", message, extra={"kind": kind, **extra})


def stage(message: str) -> None:
    """`==> stage: what it does`, the line CI logs and the tests read."""
    _emit(logging.INFO, "stage", message)


def say(message: str) -> None:
    """A line under the current stage (indented in text)."""
    _emit(logging.INFO, "say", message)


def block(text: str) -> None:
    """A table, a report or a result, printed as it is."""
    _emit(logging.INFO, "block", text)


def warn(message: str) -> None:
    _emit(logging.WARNING, "say", message)


def error(message: str) -> None:
    """The error line (and its detail): stderr in text mode."""
    _emit(logging.ERROR, "error", message)
