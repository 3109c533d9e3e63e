"""The throw-away PostgreSQL verify starts for the container (a real one): it listens on every address it
was given, or says which it could not have. PostgreSQL itself starts on any one of them and only logs the
others, and a container sent to an address another server holds hangs instead of being refused."""

from __future__ import annotations

import socket

import pytest

from imagepipe.errors import PipelineError
from imagepipe.services.postgres import TempPostgres


def test_a_listen_address_held_by_another_server_is_an_error_naming_address_and_port():
    with socket.socket() as holder:  # a stand-in on podman's gateway, say; 127.0.0.2 is loopback too
        holder.bind(("127.0.0.2", 0))
        holder.listen()
        port = holder.getsockname()[1]
        pg = TempPostgres(port=port, listen="127.0.0.1,127.0.0.2")
        try:
            with pytest.raises(PipelineError) as e:
                pg.start()
        finally:
            pg.stop()
    assert e.value.message == (f"the throw-away PostgreSQL could not listen on 127.0.0.2:{port} (Address already "
                               "in use): another process took the port; run again")
    assert not pg.dir.exists()


def test_with_every_address_free_it_starts_and_answers_on_each():
    import psycopg

    with TempPostgres(listen="127.0.0.1,127.0.0.2", allow=("127.0.0.2/32",)) as pg:
        for host in ("127.0.0.1", "127.0.0.2"):
            with psycopg.connect(pg.dsn(host=host), connect_timeout=5) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
