"""The one output path: the same calls give the stage lines CI reads, JSON events, or warnings only."""

import json
import logging

import pytest

from imagepipe.ui import output


@pytest.fixture(autouse=True)
def restore_logging():
    yield
    output.configure()


def emit() -> None:
    output.stage("==> build: buildah bud")
    output.say("built localhost/x:1\ndigest sha256:ab")
    logging.getLogger("imagepipe.checks").info("  ok   size")
    output.warn("retrying")
    output.error("error: [push] refused")


def test_text(capsys):
    output.configure()
    emit()
    out, err = capsys.readouterr()
    assert out.splitlines() == ["==> build: buildah bud", "    built localhost/x:1", "    digest sha256:ab",
                                "      ok   size", "    warning: retrying"]
    assert err == "error: [push] refused\n"


def test_quiet(capsys):
    output.configure(quiet=True)
    emit()
    out, err = capsys.readouterr()
    assert out == "    warning: retrying\n" and err == "error: [push] refused\n"


def test_json_events(capsys):
    output.configure(as_json=True)
    output.CURRENT_STAGE[0] = "build"
    emit()
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["kind"], e["level"]) for e in events] == [("stage", "info"), ("say", "info"), ("say", "info"),
                                                        ("say", "warning"), ("error", "error")]
    assert all(e["stage"] == "build" for e in events) and err == ""


def test_libraries_info_lines_never_reach_the_output(capsys):
    """The MCP client's `HTTP Request:` lines (httpx2's logger) and any other library's INFO stay out; their
    warnings still show."""
    output.configure()
    logging.getLogger("httpx2").info('HTTP Request: POST http://127.0.0.1:8000/mcp/ "HTTP/1.1 200 OK"')
    logging.getLogger("somelib.client").info("connected")
    logging.getLogger("somelib.client").warning("slow answer")
    output.say("ours")
    out, err = capsys.readouterr()
    assert out.splitlines() == ["    warning: slow answer", "    ours"] and err == ""
