"""A real PostgreSQL server for the sweep tests, started by the tests themselves, as Optuna's own CI tests its
RDB storage against a real server (not SQLite standing in for one, not a mock).

Debian's ``postgresql`` package provides the programs (``.ci/run`` installs it). ``Postgres`` runs ``initdb``
and ``pg_ctl`` as the ``postgres`` user when the tests run as root (as CI does: PostgreSQL refuses to run as
root), on a free port of 127.0.0.1, with a password user; ``database()`` makes a fresh database for each test.
Where PostgreSQL is not installed the tests that need it are skipped with the reason, unless
``LINLIGHT_TEST_POSTGRES=required`` (set by ``.ci/run``): then they fail, so CI never passes without them.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REQUIRED = os.environ.get("LINLIGHT_TEST_POSTGRES") == "required"
USER = "ll"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def programs() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: Debian keeps them in /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"PostgreSQL is required here (LINLIGHT_TEST_POSTGRES=required) but {reason}", pytrace=False)
    pytest.skip(f"{reason} (apt-get install postgresql; CI sets LINLIGHT_TEST_POSTGRES=required and fails instead)")


class Postgres:
    """One server: ``start``, ``stop`` (``pg_ctl stop -m fast``, as an administrator would), ``url(database)``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.password = f"pw-{secrets.token_hex(8)}"  # distinctive: the tests look for it in everything printed
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="linlight-postgres-"))  # not under pytest's root-only folder
        self.data, self.log = self.dir / "data", self.dir / "server.log"
        self.user = "postgres" if os.geteuid() == 0 else None  # PostgreSQL will not run as root
        if self.user:
            shutil.chown(self.dir, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                  "--no-sync")

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(self.bin / program), *args], user=self.user, capture_output=True, text=True,
                              cwd=self.dir, timeout=120)
        if proc.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{program} {' '.join(args)} failed ({proc.returncode}): {proc.stderr}\n{log[-2000:]}")
        return proc

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                   "-c fsync=off -c max_connections=200")
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log), "-o", options)

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))

    def running(self) -> bool:
        status = subprocess.run([str(self.bin / "pg_ctl"), "status", "-D", str(self.data)], user=self.user,
                                capture_output=True, text=True, cwd=self.dir)
        return status.returncode == 0

    def sql(self, statement: str) -> None:
        self._run("psql", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-v",
                  "ON_ERROR_STOP=1", "-q", "-c", statement)

    def database(self) -> str:
        """A new, empty database owned by the password user; its name."""
        name = f"sweep_{secrets.token_hex(4)}"
        self.sql(f"CREATE DATABASE {name} OWNER {USER}")
        return name

    def url(self, database: str, scheme: str = "postgresql+psycopg") -> str:
        return f"{scheme}://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def shown(self, database: str, scheme: str = "postgresql+psycopg") -> str:
        """The URL as linlight must print it: the password hidden."""
        return f"{scheme}://{USER}:***@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_server() -> Postgres:
    bin_dir = programs()
    if bin_dir is None:
        unavailable("PostgreSQL's initdb and pg_ctl are not installed")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("the driver psycopg is not installed (pip install -r requirements-dev.txt)")
    server = Postgres(bin_dir)
    for attempt in range(3):  # a free port can be taken by another process before the server binds it
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
            server.port = free_port()
            time.sleep(0.5)
    server.sql(f"CREATE ROLE {USER} LOGIN PASSWORD '{server.password}'")
    return server
