"""argv builders for the host's other tools: git, gpg, PostgreSQL's binaries, debootstrap and chroot, tar,
dpkg-deb, mount/unshare, hadolint, pip, lighttpd and wrk."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = [
    "chroot", "debootstrap", "dpkg_deb_extract", "git", "gpg", "gpgconf_kill_agent", "hadolint", "initdb",
    "lighttpd", "mount_bind", "mount_private", "pg_ctl_start", "pg_ctl_stop", "pip_wheel", "psql", "tar_create",
    "unshare_mount", "wrk",
]


def git(root: Path, *args: str) -> list[str]:
    return ["git", "-C", str(root), *args]


def gpg(*args: str) -> list[str]:
    """gpg without a terminal (GNUPGHOME comes from the environment the caller passes)."""
    return ["gpg", "--batch", "--no-tty", *args]


def gpgconf_kill_agent() -> list[str]:
    """Stop the gpg-agent of the GNUPGHOME in the caller's environment (a no-op when none runs)."""
    return ["gpgconf", "--kill", "gpg-agent"]


def hadolint(containerfile: Path, config: Path) -> list[str]:
    return ["hadolint", "--no-color", "--config", str(config), str(containerfile)]


def pip_wheel(requirements: Path, target: Path, *, require_hashes: bool) -> list[str]:
    """Wheels for every requirement into `target`, with this interpreter's pip."""
    hashed = ["--require-hashes"] if require_hashes else []
    return [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", *hashed, "-r",
            str(requirements), "-w", str(target)]


def initdb(bindir: Path, data: Path, *, superuser: str, pwfile: Path) -> list[str]:
    return [str(bindir / "initdb"), "-D", str(data), "-U", superuser, "-A", "scram-sha-256", f"--pwfile={pwfile}",
            "-E", "UTF8", "--no-sync"]


def pg_ctl_start(bindir: Path, data: Path, *, port: int, socket_dir: Path, listen: str, log: Path) -> list[str]:
    # fsync off: a throw-away cluster; nothing in it outlives the run
    opts = f"-p {port} -k {socket_dir} -c listen_addresses='{listen}' -c fsync=off"
    return [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "-t", "60", "start"]


def pg_ctl_stop(bindir: Path, data: Path) -> list[str]:
    return [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]


def psql(bindir: Path, *, dsn: str | None = None, host: str = "127.0.0.1", port: int = 5432, user: str = "postgres",
         database: str = "postgres", sql: str) -> list[str]:
    """One statement, stopping on the first error; by DSN, or by host/port/user (password from PGPASSWORD)."""
    where = [dsn] if dsn else ["-h", host, "-p", str(port), "-U", user, "-d", database]
    return [str(bindir / "psql"), *where, "-v", "ON_ERROR_STOP=1", "-q", "-tA", "-c", sql]


def debootstrap(root: Path, mirror: str, *, suite: str = "bookworm", arch: str | None = None) -> list[str]:
    """A minimal Debian root; `arch` another Debian architecture (its second stage runs under emulation)."""
    return ["debootstrap", "--variant=minbase", *([f"--arch={arch}"] if arch else []), suite, str(root), mirror]


def chroot(root: Path, *argv: str) -> list[str]:
    return ["chroot", str(root), *argv]


def tar_create(root: Path, tarball: Path) -> list[str]:
    return ["tar", "--numeric-owner", "-C", str(root), "-cf", str(tarball), "."]


def dpkg_deb_extract(deb: Path, dest: Path) -> list[str]:
    return ["dpkg-deb", "-x", str(deb), str(dest)]


def mount_bind(path: Path) -> list[str]:
    return ["mount", "--bind", str(path), str(path)]


def mount_private(path: Path) -> list[str]:
    return ["mount", "--make-private", str(path)]


def unshare_mount(ns_file: Path, script: str) -> list[str]:
    """A persistent mount namespace bound at ns_file, prepared by `script`."""
    return ["unshare", f"--mount={ns_file}", "--propagation", "unchanged", "sh", "-c", script]


def lighttpd(config: Path) -> list[str]:
    return ["lighttpd", "-f", str(config)]


def wrk(url: str, *, concurrency: int, seconds: int, headers: dict[str, str] | None = None) -> list[str]:
    argv = ["wrk", "-t2", f"-c{concurrency}", f"-d{seconds}s", "--latency"]
    for key, value in (headers or {}).items():
        argv += ["-H", f"{key}: {value}"]
    return [*argv, url]
