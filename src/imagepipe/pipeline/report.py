"""The report: a table on the terminal, JSON (--report) and JUnit XML (--junit)."""

from __future__ import annotations

import base64
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from imagepipe.checks.types import VerifyResult
from imagepipe.image.refs import BuildFacts
from imagepipe.pipeline.context import Context
from imagepipe.ui import output, tables


def as_dict(result: VerifyResult, *, builder: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "passed": result.passed,
        "image": result.image,
        "builder": builder,
        "verify_seconds": round(result.seconds, 2),
        "verify_phases": [{"phase": what, "at_s": at} for what, at in result.phases],
        "checks": [{"id": c.id, "passed": c.passed, "value": c.value, "limit": c.limit, "detail": c.detail,
                    "seconds": c.seconds} for c in result.checks],
        **(extra or {}),
    }


def table(result: VerifyResult) -> str:
    rows = [(c.id, "pass" if c.passed else "FAIL", _short(c.value), _short(c.limit)) for c in result.checks]
    lines = [tables.render(("check", "result", "value", "limit"), rows)]
    failed = [c for c in result.checks if not c.passed]
    for c in failed:
        lines.append(f"  {c.id}: {c.detail}")
    verdict = "PASSED" if result.passed else f"FAILED ({len(failed)} of {len(result.checks)} checks)"
    lines.append(f"{verdict}: {result.image} (verify {result.seconds:.1f} s)")
    return "\n".join(lines)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def junit(result: VerifyResult, *, builder: str) -> str:
    failures = sum(not c.passed for c in result.checks)
    suite = ET.Element("testsuite", name=f"imagepipe.checks.verifier.{builder}", tests=str(len(result.checks)),
                       failures=str(failures), errors="0", time=f"{result.seconds:.2f}")
    ET.SubElement(ET.SubElement(suite, "properties"), "property", name="image", value=result.image)
    for c in result.checks:
        case = ET.SubElement(suite, "testcase", classname=f"contract.{builder}", name=c.id, time=f"{c.seconds:.2f}")
        if not c.passed:
            failure = ET.SubElement(case, "failure", message=c.detail[:500])
            failure.text = f"value={_short(c.value, 2000)} limit={_short(c.limit, 2000)}\n{c.detail}"
        else:
            ET.SubElement(case, "system-out").text = c.detail
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def write_junit(path: Path, result: VerifyResult, *, builder: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit(result, builder=builder) + "\n")


def _short(value: Any, limit: int = 40) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def platform_entry(platform: str, result: VerifyResult, facts: BuildFacts | None) -> dict[str, Any]:
    """One platform of a multi-platform run: its image, whether it ran emulated, its build and its checks."""
    return {"platform": platform, "image": result.image, "passed": result.passed, "emulated": result.emulated,
            "architecture": result.architecture, "verify_seconds": round(result.seconds, 2),
            "build_steps": [s.as_dict() for s in facts.steps] if facts else [],
            "build_emulated": facts.emulated if facts else None,
            "size_by_dir_mb": size_by_dir(result),
            "checks": [{"id": c.id, "passed": c.passed, "value": c.value, "limit": c.limit, "detail": c.detail}
                       for c in result.checks]}


def size_by_dir(result: VerifyResult, top: int = 8) -> dict[str, float]:
    """Where an image's bytes are (verify's tree pass), the largest directories first, in MB."""
    sizes = result.inventory.sizes if result.inventory else {}
    return {k: round(v / 1e6, 1) for k, v in list(sizes.items())[:top]}


def finish(ctx: Context, result: VerifyResult, *, facts: BuildFacts | None = None,
           published: dict[str, object] | None = None, platforms: list[dict[str, Any]] | None = None) -> None:
    """The table on the terminal; the JSON report and JUnit XML where asked for, with the build's steps and
    what promote published when the run had them."""
    output.block("\n" + table(result))
    builder = ctx.args.building.builder
    extra: dict[str, Any] = {"timings": {k: round(v, 2) for k, v in ctx.timings.items()}}
    if "build" in ctx.timings:
        extra["build_seconds"] = round(ctx.timings["build"], 2)
    if facts is not None and facts.steps:
        extra["build_steps"] = [s.as_dict() for s in facts.steps]
    if facts is not None and facts.cluster:
        extra["cluster"] = facts.cluster
    extra.update(published or {})
    if platforms:  # with promote's per-platform SBOM and provenance merged in, when it ran
        attested = (published or {}).get("platforms")
        for entry in platforms:
            more = attested.get(entry["platform"]) if isinstance(attested, dict) else None
            entry.update(more if isinstance(more, dict) else {})
        extra["platforms"] = platforms
    data = as_dict(result, builder=builder, extra=extra)
    if ctx.args.verifying.report:
        write_json(ctx.args.verifying.report, data)
    if ctx.args.verifying.junit:
        write_junit(ctx.args.verifying.junit, result, builder=builder)
    if os.environ.get(LOG_ENV) == "1":  # a pod's files die with it: its log carries them to `submit`
        print(f"{REPORT_MARK}{json.dumps(data, separators=(',', ':'), default=str)}", flush=True)
        print(f"{JUNIT_MARK}{base64.b64encode(junit(result, builder=builder).encode()).decode()}", flush=True)


LOG_ENV = "IMAGEPIPE_REPORT_LOG"
REPORT_MARK = "imagepipe-report: "
JUNIT_MARK = "imagepipe-junit-base64: "


def from_log(lines: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    """(the report, the JUnit XML) that a pipeline with LOG_ENV set ended its log with, where it did."""
    found: dict[str, Any] | None = None
    xml: str | None = None
    for line in lines:
        if line.startswith(REPORT_MARK):
            found = json.loads(line.removeprefix(REPORT_MARK))
        elif line.startswith(JUNIT_MARK):
            xml = base64.b64decode(line.removeprefix(JUNIT_MARK)).decode()
    return found, xml
