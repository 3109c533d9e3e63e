"""One exception root. Each error carries a one-line message that names the problem and the fix, and the
exit code of the stage it stopped."""

from __future__ import annotations

import re
from pathlib import Path


class PipelineError(Exception):
    """Base of every error the pipeline reports; `stage` decides the exit code (imagepipe.pipeline.stagetable)."""

    def __init__(self, message: str, *, stage: str | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage
        self.detail = detail  # e.g. the tail of a tool's output, shown under the one-line message


class UsageError(PipelineError):
    """Bad command-line input or project layout; nothing was changed (exit 2 whatever the stage)."""


class ToolMissing(PipelineError):
    """An external program is not installed."""


class ToolFailed(PipelineError):
    """An external program exited non-zero; `detail` and `output` hold the tail of its output, `full` all of it
    (a cause may be printed long before the tool gives up: pip's TLS errors, before its retries end)."""

    def __init__(self, message: str, *, argv: list[str], code: int, output: str, stage: str | None = None,
                 full: str = "") -> None:
        super().__init__(message, stage=stage, detail=output)
        self.argv = argv
        self.code = code
        self.output = output
        self.full = full or output


class LintFailed(PipelineError):
    """The Containerfile breaks a contract rule or a hadolint rule."""


def pip_failure(output: str, context: Path) -> PipelineError | None:
    """What pip's output in a failed build means, for either builder: one line naming the problem and the
    fix, or None when pip is not the cause. `output` may be the whole build's; the detail is its tail."""
    detail = "\n".join(output.rstrip().splitlines()[-25:])
    requirements = context / "requirements.txt"
    # before "No matching distribution": that is what pip says after every index it could not verify
    tls = re.search(r"CERTIFICATE_VERIFY_FAILED", output)
    if tls:
        host = re.search(r"HTTPSConnectionPool\(host='([^']+)', port=(\d+)\)[^\n]*CERTIFICATE_VERIFY_FAILED", output)
        where = f"{host.group(1)}:{host.group(2)}" if host else "its package index"
        return PipelineError(f"pip in the build does not trust the TLS certificate of {where} "
                             "(CERTIFICATE_VERIFY_FAILED): pass --build-ca FILE, a PEM bundle holding the CA that "
                             "signs it (behind an intercepting proxy, the bundle with the proxy's CA, such as "
                             "/etc/ssl/certs/ca-certificates.crt)", stage="build", detail=detail)
    if re.search(r"Hashes are required in --require-hashes mode|DO NOT MATCH THE HASHES", output):
        return PipelineError(f"{requirements} has a requirement without a hash or a download that does not match "
                             "its hash: regenerate it with pip-compile --generate-hashes from requirements.in",
                             stage="build", detail=detail)
    unresolved = re.search(r"No matching distribution found for (\S+)", output)
    if unresolved:
        return PipelineError(f"requirements.txt names {unresolved.group(1)}, which pip cannot find: fix the name "
                             f"or version in {requirements}", stage="build", detail=detail)
    return None
