"""A throw-away PostgreSQL cluster (initdb + pg_ctl into a temp dir, a free port): for verify and tests."""

from __future__ import annotations

import getpass
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
from pathlib import Path

from imagepipe.errors import PipelineError
from imagepipe.exec import cancel, cmdline, runner
from imagepipe.services import tlscerts

log = logging.getLogger("imagepipe.services.postgres")


def pg_bindir() -> Path:
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / "initdb").exists():
            return base
    found = runner.installed("initdb")
    if found:
        return Path(found).parent
    raise PipelineError("PostgreSQL server binaries (initdb) are not installed: run "
                        "`python build/pipeline.py provision` or `apt-get install postgresql`", stage="verify")


def free_port() -> int:
    """A TCP port no socket of this host holds on any address. Bound on the wildcard: a port picked on
    127.0.0.1 alone may be held on another address (a stand-in listening on podman's gateway), and a server
    told to listen on both would then get only loopback."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


class TempPostgres:
    """Runs as the `postgres` system user when we are root (initdb refuses root)."""

    def __init__(self, *, port: int | None = None, listen: str = "127.0.0.1", user: str = "todo",
                 password: str | None = None, database: str = "todo", allow: tuple[str, ...] = (),
                 tls: tlscerts.ServerTLS | None = None) -> None:
        """listen: PostgreSQL's listen_addresses (comma-separated); allow: networks (CIDR) besides loopback
        that pg_hba lets in with a password (a container network). Nothing else is listened on or let in.
        tls: serve this certificate and accept TCP clients over TLS only (as Neon does)."""
        self.port = port or free_port()
        self.listen = listen
        self.allow = allow
        self.tls = tls
        self.user, self.database = user, database
        self.password = password or secrets.token_urlsafe(18)
        self.dir = Path(tempfile.mkdtemp(prefix="imagepipe-pg-"))
        self.data = self.dir / "data"
        self.bindir = pg_bindir()
        self.as_root = os.geteuid() == 0
        self.superuser = "postgres" if self.as_root else getpass.getuser()

    def _argv(self, *argv: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if self.as_root else list(argv)

    def dsn(self, host: str = "127.0.0.1", **params: str) -> str:
        query = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
        return f"postgresql://{self.user}:{self.password}@{host}:{self.port}/{self.database}{query}"

    def superuser_dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.superuser}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> TempPostgres:
        if self.as_root:
            shutil.chown(self.dir, user="postgres", group="postgres")
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if self.as_root:
            shutil.chown(pwfile, user="postgres")
        superuser = self.superuser
        runner.run(self._argv(*cmdline.initdb(self.bindir, self.data, superuser=superuser, pwfile=pwfile)),
                   what="initdb", timeout=120)
        if self.tls is not None:
            self._configure_tls(self.tls)
        else:
            # initdb's pg_hba lets in the local socket and loopback only; add exactly the networks asked for.
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.writelines(f"host all all {net} scram-sha-256\n" for net in self.allow)
        run = cancel.current()
        if run is not None:  # a SIGKILLed run's database is found and removed by the next run
            run.record("postgres", str(self.data))
        self._pg_ctl_start()
        self._check_listening()
        env = {"PGPASSWORD": self.password}
        for sql in (f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'",
                    f"CREATE DATABASE {self.database} OWNER {self.user}"):
            runner.run(cmdline.psql(self.bindir, port=self.port, user=superuser, sql=sql), env=env)
        return self

    def _configure_tls(self, tls: tlscerts.ServerTLS) -> None:
        """TLS on; pg_hba with `hostssl` lines only (no plain-text TCP at all) and SCRAM passwords."""
        for src, name in ((tls.cert, "server.crt"), (tls.key, "server.key")):
            shutil.copyfile(src, self.data / name)
            os.chmod(self.data / name, 0o600)
            if self.as_root:
                shutil.chown(self.data / name, user="postgres", group="postgres")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                       "password_encryption = 'scram-sha-256'\n")
        lines = ["local all all scram-sha-256", "hostssl all all 127.0.0.1/32 scram-sha-256",
                 *(f"hostssl all all {net} scram-sha-256" for net in self.allow)]
        (self.data / "pg_hba.conf").write_text("# written by imagepipe: TLS only\n" + "\n".join(lines) + "\n")

    def _pg_ctl_start(self) -> None:
        argv = cmdline.pg_ctl_start(self.bindir, self.data, port=self.port, socket_dir=self.dir, listen=self.listen,
                                     log=self.dir / "log")
        runner.run(self._argv(*argv), what="pg_ctl start", timeout=90)

    def _check_listening(self) -> None:
        """PostgreSQL starts when any of its listen addresses can be bound, and only logs the others: a
        container would then reach whatever else holds that address and port, and hang (not be refused)."""
        try:
            log = (self.dir / "log").read_text(errors="replace")
        except OSError:
            return
        missing = re.findall(r'could not bind IPv[46] address "([^"]+)": ([^\n]+)', log)
        if missing:
            self.stop(remove=False)
            address, why = missing[0]
            raise PipelineError(f"the throw-away PostgreSQL could not listen on {address}:{self.port} "
                                f"({why.strip()}): another process took the port; run again", stage="verify")

    def stop(self, *, remove: bool = True) -> None:
        if self.data.exists():
            runner.run(self._argv(*cmdline.pg_ctl_stop(self.bindir, self.data)), ok_codes=(0, 1, 3), timeout=60)
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)
            run = cancel.current()
            if run is not None:
                run.forget("postgres", str(self.data))

    def restart(self) -> None:
        """Start again after stop(remove=False) (tests of outages)."""
        self._pg_ctl_start()

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def for_containers(gateway: str, subnet: str, *, tls: tlscerts.ServerTLS | None = None) -> TempPostgres:
    """A throw-away PostgreSQL a bridged container reaches at the network's gateway: it listens on loopback
    and that one address, and lets in loopback and that network only."""
    listen = ",".join(dict.fromkeys(("127.0.0.1", gateway)))  # one address inside a pod
    return TempPostgres(listen=listen, allow=(subnet,), tls=tls)
