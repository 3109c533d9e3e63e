"""Ports of a checkout's own servers: claimed per state directory, machine-wide, with what holds a port named."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import psutil
import pytest

from imagepipe.errors import PipelineError
from imagepipe.registry import ports


@pytest.fixture
def table(tmp_path, monkeypatch):
    monkeypatch.setattr(ports, "claims_dir", lambda: tmp_path / "claims")
    return tmp_path / "claims"


@pytest.mark.parametrize(("cmdline", "state"), [
    (["docker-registry", "serve", "/w/a/.state/registry/config.yml"], Path("/w/a/.state")),
    (["lighttpd", "-f", "/tmp/s/sigstore/lighttpd.conf"], Path("/tmp/s")),
    (["nginx", "-c", "/etc/nginx/nginx.conf"], None),
    (["python3", "-m", "http.server"], None),
])
def test_served_state_dir_from_a_command_line(cmdline, state):
    assert ports.served_state_dir(cmdline) == state


def test_two_state_directories_get_two_ports_and_keep_them(table, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    service = ports.Service("registry", "the embedded registry", _free_block(), "--embedded-port", "registry")
    pa = ports.claim(service, a, None)
    pb = ports.claim(service, b, None)
    assert pa == service.default and pb == service.default + 1
    assert ports.claim(service, a, None) == pa and ports.claim(service, b, None) == pb, "stable per checkout"


def test_a_port_held_by_another_process_is_skipped_or_refused_with_its_holder(table, tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        service = ports.Service("sigserver", "the signature server", port, "--sigserver-port", "promote")
        assert ports.claim(service, a, None) != port
        with pytest.raises(PipelineError) as e:
            ports.claim(service, a, port)
    holder = f"{psutil.Process().name()} (pid {os.getpid()})"  # python, or pytest when run as .venv/bin/pytest
    assert f"port {port} is taken by {holder}" in e.value.message and "--sigserver-port" in e.value.message


def test_a_claim_of_a_removed_checkout_is_free_again(table, tmp_path):
    gone, here = tmp_path / "gone", tmp_path / "here"
    gone.mkdir()
    here.mkdir()
    service = ports.Service("registry", "the embedded registry", _free_block(), "--embedded-port", "registry")
    assert ports.claim(service, gone, None) == service.default
    gone.rename(tmp_path / "elsewhere")
    assert ports.claim(service, here, None) == service.default


def _free_block() -> int:
    """A port whose next neighbour is free too (both tests above claim two ports upward)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no two free ports in a row")
