"""Where a sweep's study lives: an Optuna ``RDBStorage`` on SQLite or a database server, and what linlight adds
to it so that many processes share it safely and its faults are said in one line.

- The URL is printed with its password hidden (``postgresql+psycopg://ll:***@host/db``), in every line and error.
- A driver that is not installed is named, with the package that provides it.
- Connecting gives up after ``CONNECT_TIMEOUT`` seconds (unless the URL sets its own ``connect_timeout``): a
  server that does not answer is an error within seconds, not a hang.
- The tables, the study and each new trial are created under one lock (``StudyLock``: an advisory lock on
  PostgreSQL, ``GET_LOCK`` on MySQL/MariaDB, a ``flock`` beside a SQLite file), so processes started together on
  a new database all join one study, and the study never gets more trials than asked for.
- Once the study is open, a server that goes away is waited for, up to ``--heartbeat`` seconds: every
  connection is checked before use (SQLAlchemy's ``pool_pre_ping``) and a failed connect is retried. So a restart
  (about a second) passes with two lines. The bound is the heartbeat because a trial whose heartbeat stops for
  ``2 x --heartbeat`` seconds is marked FAIL by the other processes: a worker that waited longer could come back
  to find its running trial failed. Past the bound the process gives up (``StorageLost``): one line naming the
  storage and the database's own words, the trials it recorded kept; rerunning the command finishes the study.
  A statement already sent when the server goes is not resent (it may have been carried out): that ends the
  process the same way.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from linlight.errors import ConfigError, LinlightError

try:
    import fcntl
except ImportError:  # not POSIX: no lock between processes on a SQLite file
    fcntl = None

CONNECT_TIMEOUT = 10  # seconds to establish a connection to a database server
LOCK_WAIT = 60  # seconds a process waits for the study lock that another one holds
# SQLAlchemy's name of a driver -> the package that installs it
PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pg8000": "pg8000", "pymysql": "PyMySQL",
            "mysqldb": "mysqlclient", "mysqlconnector": "mysql-connector-python", "mariadbconnector": "mariadb",
            "oracledb": "oracledb", "pyodbc": "pyodbc", "pymssql": "pymssql"}
# how each driver takes a connect timeout, in seconds
TIMEOUT_ARGS = {"psycopg": "connect_timeout", "psycopg2": "connect_timeout", "pymysql": "connect_timeout",
                "mysqldb": "connect_timeout", "pg8000": "timeout"}


class StorageError(LinlightError):
    """The study's database cannot be opened or was lost; the message names it with its password hidden."""


def shown(url: str) -> str:
    """The URL as it may be printed: its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1] if "@" in url else url


def sqlite_url(root: Path) -> str:
    """The default storage: a SQLite file in the sweep's ``lightning_logs`` folder."""
    return f"sqlite:///{root / 'lightning_logs' / 'sweep.db'}"


class Storage:
    """A study's storage as one process uses it: opening, the lock, riding out an outage, and its errors."""

    def __init__(self, url: str, heartbeat: int) -> None:
        self.url, self.shown, self.heartbeat = url, shown(url), heartbeat
        try:
            self.parsed = make_url(url)
        except ArgumentError:
            raise ConfigError(f"--storage {self.shown} is not a database URL, e.g. "
                              "postgresql+psycopg://user@host/db or sqlite:///path/sweep.db") from None
        self.backend = self.parsed.get_backend_name()
        self.window = heartbeat  # how long an outage is waited for (see the module's docstring)
        self.riding = False  # outages are waited for only once the study is open: a wrong URL fails at once
        self.lost: StorageLost | None = None
        self._down_since: float | None = None
        self._state = threading.Lock()  # the heartbeat thread reconnects too
        self.lock = StudyLock(self)

    # ------------------------------------------------------------------------------------------ opening
    def open_study(self, name: str, seed: int | None, first: bool) -> optuna.Study:
        """The study, created by whichever process comes first (``first``: this command's first opening, which
        also creates the tables and checks their version; a command's worker processes only load it)."""
        self._check_driver()
        self.riding = not first  # a worker's command has opened the study: an outage now is waited for
        try:
            with self.lock:
                storage = RidingStorage(
                    self.url, engine_kwargs=self.engine_kwargs(), heartbeat_interval=self.heartbeat,
                    grace_period=2 * self.heartbeat, skip_table_creation=not first,
                    skip_compatibility_check=not first)
                event.listen(storage.engine, "do_connect", self._connect)
                storage.owner = self
                sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
                study = optuna.create_study(storage=storage, study_name=name, direction="minimize",
                                            load_if_exists=True, sampler=sampler,
                                            pruner=optuna.pruners.MedianPruner())
        except LinlightError:
            raise
        except Exception as e:
            if isinstance(e, (ValueError, OSError, ImportError)) or database_error(e) is not None:
                raise StorageError(f"cannot open the storage {self.shown}: {self.cause(e)}") from None
            raise
        self.riding = True
        return study

    def _check_driver(self) -> None:
        try:
            dialect = self.parsed.get_dialect()
        except NoSuchModuleError:
            raise StorageError(f"cannot open the storage {self.shown}: SQLAlchemy knows no database "
                               f"{self.parsed.drivername!r}; e.g. postgresql+psycopg://, mysql+pymysql://, "
                               "sqlite:///") from None
        try:
            dialect.import_dbapi()
        except ImportError as e:
            package = PACKAGES.get(dialect.driver, dialect.driver)
            raise StorageError(f"cannot open the storage {self.shown}: its driver, {dialect.driver}, is not "
                               f"installed ({e}): pip install '{package}'") from None

    def engine_kwargs(self) -> dict[str, Any]:
        """SQLite: writers wait for each other; a server: a connect timeout, connections checked before use."""
        if self.backend == "sqlite":
            return {"connect_args": {"timeout": 60}}
        driver = self.parsed.get_dialect().driver
        timeout = TIMEOUT_ARGS.get(driver)
        args = {timeout: CONNECT_TIMEOUT} if timeout and timeout not in self.parsed.query else {}
        return {"pool_pre_ping": True, "connect_args": args}

    def engine(self) -> Engine:
        """An engine of our own (the study lock's), connecting as Optuna's does."""
        engine = create_engine(self.url, **self.engine_kwargs())
        event.listen(engine, "do_connect", self._connect)
        return engine

    # ------------------------------------------------------------------------------------------ outages
    def _connect(self, dialect: Any, record: Any, cargs: tuple, cparams: dict) -> Any:
        """Every new connection (SQLAlchemy's ``do_connect``): once the study is open, retry for ``window`` s."""
        while True:
            if self.lost is not None:
                raise StorageLost(str(self.lost))
            try:
                connection = dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.Error as e:
                if not self.riding:
                    raise
                self.failed(e)
                time.sleep(0.5)
                continue
            with self._state:
                if self._down_since is not None:
                    print(f"linlight sweep: the storage {self.shown} is back after "
                          f"{time.monotonic() - self._down_since:.1f} s", file=sys.stderr, flush=True)
                    self._down_since = None
            return connection

    def failed(self, error: BaseException) -> None:
        """A connection failed or was cut off: note the outage; past the window, give the storage up (raises)."""
        now = time.monotonic()
        with self._state:
            if self._down_since is None:
                self._down_since = now
                print(f"linlight sweep: cannot reach the storage {self.shown} ({self.cause(error)}); waiting up to "
                      f"{self.window} s for it (--heartbeat)", file=sys.stderr, flush=True)
            elif now - self._down_since >= self.window:
                self.lose(error, f" for more than {self.window} s")
        if self.lost is not None:
            raise StorageLost(str(self.lost)) from None

    def lose(self, error: BaseException, how_long: str = "") -> StorageLost:
        """Give the storage up: every later connection fails at once, and the trial stops at its next epoch."""
        if self.lost is None:
            self.lost = StorageLost(f"lost the storage {self.shown}{how_long}: {self.cause(error)}; the trials it "
                                    "recorded are kept: run the same command to finish the study once it is back")
        return self.lost

    @contextmanager
    def errors(self) -> Iterator[None]:
        """A storage fault anywhere below (often wrapped by Optuna, or hidden under an error of Optuna's own that
        the fault caused) becomes one ``StorageLost`` line."""
        try:
            yield
        except LinlightError as e:
            if self.lost is not None and not isinstance(e, StorageError):
                raise StorageLost(str(self.lost)) from None
            raise
        except Exception as e:
            cause = database_error(e)
            if cause is None and self.lost is None:
                raise
            lost = self.lost or self.lose(cause)
            raise StorageLost(str(lost)) from None

    def cause(self, error: BaseException) -> str:
        """The database's own words for a failure, on one line, without the password."""
        found = error if is_driver_error(error) else database_error(error) or error
        if isinstance(found, StorageLost):
            return str(found)
        found = getattr(found, "orig", None) or found  # the driver's exception inside SQLAlchemy's
        words = " ".join(str(found).split()) or type(found).__name__
        password = self.parsed.password
        if password:
            words = words.replace(str(password), "***")
        return words[:400]

    def quiet_heartbeat(self) -> None:
        """A heartbeat thread that loses the storage gives it up quietly (no traceback): the trial's own thread
        sees ``lost`` at its next epoch and says so in one line."""
        previous = threading.excepthook

        def hook(args: threading.ExceptHookArgs) -> None:
            cause = database_error(args.exc_value) if args.exc_value is not None else None
            if cause is None:
                previous(args)
            else:
                self.lose(cause)

        threading.excepthook = hook


class StorageLost(StorageError):
    """The storage went away mid-sweep and did not come back within the bound."""


def is_driver_error(error: BaseException) -> bool:
    """An exception of the database driver itself (psycopg's, sqlite3's, ...), not one SQLAlchemy or Optuna made."""
    return isinstance(error, Exception) and not isinstance(
        error, (SQLAlchemyError, optuna.exceptions.OptunaError, LinlightError)) and \
        type(error).__module__.split(".")[0] not in ("builtins", "sqlalchemy", "optuna")


def database_error(error: BaseException) -> BaseException | None:
    """The database failure under ``error`` (its causes and contexts followed), if there is one."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, (StorageLost, DBAPIError)):
            return e
        stack += [e.__context__, e.__cause__]
    seen.clear()
    stack = [error]
    while stack:  # no driver error: an error SQLAlchemy or Optuna's storage raised itself
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, (SQLAlchemyError, optuna.exceptions.StorageInternalError)):
            return e
        stack += [e.__context__, e.__cause__]
    return None


def cut_off(error: BaseException) -> bool:
    """Whether ``error`` comes from a connection that broke under a statement (the server stopped or went away)."""
    found = database_error(error)
    return isinstance(found, DBAPIError) and found.connection_invalidated


class RidingStorage(optuna.storages.RDBStorage):
    """Optuna's ``RDBStorage``, whose calls that a broken connection cut off are made again once the storage is
    back (within its owner's window): the reads, and the writes that come out the same when made twice (an
    attribute, a reported value, a heartbeat, a parameter, a trial's end). Not the creation of a trial or a study:
    had the server carried it out before the connection broke, a second one would be one too many.

    A server stopped as an administrator does (``pg_ctl stop -m fast``) rolls back the transactions it cuts off,
    so what is made again was not done; a server that vanishes at the instant of a commit leaves it unknown, and
    a trial's end or parameter found already recorded is taken as done.
    """

    owner: Storage | None = None


def _again(name: str) -> Any:
    method = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(method)
    def call(self: RidingStorage, *args: Any, **kwargs: Any) -> Any:
        again = False
        while True:
            try:
                return method(self, *args, **kwargs)
            except Exception as e:
                if again and _done_before(self, name, args, kwargs, e):
                    return True if name == "set_trial_state_values" else None
                if self.owner is None or not self.owner.riding or not cut_off(e):
                    raise
                self.owner.failed(e)  # past the window: StorageLost
                again = True

    return call


def _done_before(storage: RidingStorage, name: str, args: tuple, kwargs: dict, error: Exception) -> bool:
    """A write made again that finds itself already made (the first one was carried out after all)."""
    if name == "set_trial_state_values" and isinstance(error, optuna.exceptions.UpdateFinishedTrialError):
        state = kwargs.get("state", args[1] if len(args) > 1 else None)
        return storage.get_trial(args[0]).state == state
    if name in ("set_trial_param", "_set_trial_param") and isinstance(database_error(error), DBAPIError):
        return kwargs.get("param_name", args[1] if len(args) > 1 else None) in storage.get_trial(args[0]).params
    return False


# Optuna's own study and trial objects call these through its _CachedStorage, which calls the private ones
# (tests/test_sweep_server.py checks that the installed Optuna has every one)
REPEATED = ("get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
            "get_study_system_attrs", "get_all_studies", "get_trial_user_attrs", "get_trial_system_attrs",
            "get_trial_id_from_study_id_trial_number", "get_trial_param", "get_trial", "get_all_trials",
            "get_best_trial", "_get_trials", "_get_best_trial_id", "_get_stale_trial_ids", "set_study_user_attr",
            "set_study_system_attr", "set_trial_param", "_set_trial_param", "set_trial_state_values",
            "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr", "record_heartbeat")
for _name in REPEATED:
    if hasattr(optuna.storages.RDBStorage, _name):
        setattr(RidingStorage, _name, _again(_name))


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
