"""The study lock: one process at a time creates the tables and the study, or counts the study's trials and
creates the next one (see ``StudyLock``).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from linlight.sweep.faults import StorageError, cut_off

if TYPE_CHECKING:
    from linlight.sweep.storage import Storage

try:
    import fcntl
except ImportError:  # not POSIX: no lock between processes on a SQLite file
    fcntl = None

LOCK_WAIT = 60  # seconds a process waits for the study lock that another one holds


class StudyLock:
    """One process at a time creates the tables and the study, or counts the study's trials and creates the next.

    Optuna creates trials unconditionally, so two processes that both see one trial left would both start it, and
    two that create a new database's tables at once collide (PostgreSQL: ``duplicate key value violates unique
    constraint "pg_type_typname_nsp_index"``). The lock is the database's own where it has one, held on a
    connection of its own: PostgreSQL's session advisory lock, MySQL's ``GET_LOCK``; it goes with the connection
    if the process dies. A SQLite file, on one machine, gets an exclusive ``flock`` on ``<db>.lock``. Waiting for
    it is bounded (``LOCK_WAIT``); it is held for milliseconds.
    """

    KEY = int.from_bytes(hashlib.sha256(b"linlight sweep").digest()[:8], "big", signed=True)
    NAME = "linlight sweep"

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        database = storage.parsed.database if storage.backend == "sqlite" else None
        self.path = Path(f"{database}.lock") if fcntl and database and database != ":memory:" else None
        self.server = storage.backend in ("postgresql", "mysql", "mariadb")
        self._engine: Engine | None = None
        self._held: Any = None

    def acquire(self, *_: Any) -> None:
        """Take the lock (waiting for it); also an Optuna callback, ``(study, trial)``."""
        if self._held is not None:
            return
        if self.path is not None:
            self._held = open(self.path, "a")  # noqa: SIM115 -- held across calls, closed in release()
            fcntl.flock(self._held, fcntl.LOCK_EX)
        elif self.server:
            if self._engine is None:
                self._engine = self.storage.engine()
            while self._held is None:
                try:
                    self._held = self._take(self._engine.connect())
                except SQLAlchemyError as e:
                    if not (self.storage.riding and cut_off(e)):
                        raise
                    self.storage.failed(e)  # past the window: StorageLost

    def _take(self, connection: Any) -> Any:
        try:
            return self._wait(connection)
        except BaseException:
            connection.close()
            raise

    def _wait(self, connection: Any) -> Any:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            if self.storage.backend == "postgresql":
                got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.KEY}).scalar()
            else:
                got = connection.execute(text("SELECT GET_LOCK(:name, 1)"), {"name": self.NAME}).scalar() == 1
            connection.commit()
            if got:
                return connection
            if time.monotonic() > deadline:
                raise StorageError(f"another process has held the study lock of {self.storage.shown} for more "
                                   f"than {LOCK_WAIT} s; if none is running, restart the database server")
            time.sleep(0.02)

    def release(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        if self.path is not None:
            held.close()  # closing the file releases the flock
            return
        try:
            if self.storage.backend == "postgresql":
                held.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.KEY})
            else:
                held.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": self.NAME})
            held.commit()
        except SQLAlchemyError:  # the connection is gone, and the lock with it
            held.invalidate()
        finally:
            held.close()

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *_: Any) -> None:
        self.release()
