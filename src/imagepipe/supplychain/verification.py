"""The verification attestation's predicate: what verify proved about one digest, check by check, in a form
an admission policy can read (docs/verification-attestation.md is its schema). Pure: made from verify's
result, signed by promote with cosign (supplychain.cosigning) only after every check passed."""

from __future__ import annotations

import json
from typing import Any

from imagepipe.checks.types import VerifyResult

PREDICATE_TYPE = "https://imagepipe.dev/verification/v1"
# the contract verify checks against (../shared/spec/backend-dockerfile.contract.md, "Version History")
CONTRACT = {"name": "backend-dockerfile.contract.md", "version": "1.0.0", "date": "2026-01-18"}


def _plain(value: Any) -> Any:
    """A check's value or limit as JSON has it (numbers and strings kept; anything else as its text)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return str(value)


def predicate(result: VerifyResult, *, digest: str, where: str, verifier_version: str) -> dict[str, Any]:
    """`where`: "host" or "pod", where verify (and so every check) ran."""
    advisories = next((c.facts for c in result.checks if c.id == "vulnerabilities" and c.facts), {})
    return {
        "image": {"digest": digest, "architecture": result.architecture, "emulated": result.emulated},
        "verifier": {"name": "imagepipe", "version": verifier_version},
        "contract": CONTRACT,
        "passed": result.passed,
        "checks": [{"id": c.id, "result": "pass" if c.passed else "fail", "value": _plain(c.value),
                    "limit": _plain(c.limit), "where": where} for c in result.checks],
        "advisories": {"source": advisories.get("advisory_source", ""),
                       "asOf": advisories.get("advisories_as_of", "")},
        "durationSeconds": round(result.seconds, 1),
    }
