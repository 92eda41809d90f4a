"""Where a sweep's study lives: an Optuna ``RDBStorage`` on SQLite or a database server, and what linlight adds
to it so that many processes share it safely and its faults are said in one line.

- The URL is printed with its password hidden (``postgresql+psycopg://ll:***@host/db``), in every line and error.
- A driver that is not installed is named, with the package that provides it.
- Connecting gives up after ``CONNECT_TIMEOUT`` seconds (unless the URL sets its own ``connect_timeout``): a
  server that does not answer is an error within seconds, not a hang.
- The tables, the study and each new trial are created under one lock (``linlight.sweep.lock``), so processes
  started together on a new database all join one study, and the study never gets more trials than asked for.
- Once the study is open, a server that goes away is waited for, up to ``--heartbeat`` seconds: every
  connection is checked before use (SQLAlchemy's ``pool_pre_ping``), a failed connect is retried, and a call
  that a broken connection cut off is made again (``RidingStorage``). So a restart (well under a second) passes
  with two lines. The bound is the heartbeat because a trial whose heartbeat stops for ``2 x --heartbeat``
  seconds is marked FAIL by the other processes: a worker that waited longer could come back to find its running
  trial failed. Past the bound the process gives up (``StorageLost``): one line naming the storage and the
  database's own words, the trials it recorded kept; rerunning the command finishes the study.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy import event
from sqlalchemy.engine import Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from linlight.errors import ConfigError, LinlightError
from linlight.sweep.faults import StorageError, StorageLost, cut_off, database_error, is_driver_error
from linlight.sweep.lock import StudyLock

CONNECT_TIMEOUT = 10  # seconds to establish a connection to a database server
# SQLAlchemy's name of a driver -> the package that installs it
PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pg8000": "pg8000", "pymysql": "PyMySQL",
            "mysqldb": "mysqlclient", "mysqlconnector": "mysql-connector-python", "mariadbconnector": "mariadb",
            "oracledb": "oracledb", "pyodbc": "pyodbc", "pymssql": "pymssql"}
# how each driver takes a connect timeout, in seconds
TIMEOUT_ARGS = {"psycopg": "connect_timeout", "psycopg2": "connect_timeout", "pymysql": "connect_timeout",
                "mysqldb": "connect_timeout", "pg8000": "timeout"}


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


# Optuna's own study and trial objects call these through its _CachedStorage, which calls the private ones; which
# private ones depends on Optuna's version (4.x: _get_trials, _get_stale_trial_ids; 5.x adds _get_best_trial_id
# and _set_trial_param), so each is made again where the installed Optuna has it. NOT_REPEATED are the calls
# made once on purpose: creating a study or a trial twice would be one too many; the others read no database.
# (tests/test_sweep_server.py checks that every call the installed Optuna's _CachedStorage makes is in one of them)
REPEATED = ("get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
            "get_study_system_attrs", "get_all_studies", "get_trial_user_attrs", "get_trial_system_attrs",
            "get_trial_id_from_study_id_trial_number", "get_trial_param", "get_trial", "get_all_trials",
            "get_best_trial", "_get_trials", "_get_best_trial_id", "_get_stale_trial_ids", "set_study_user_attr",
            "set_study_system_attr", "set_trial_param", "_set_trial_param", "set_trial_state_values",
            "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr", "record_heartbeat")
NOT_REPEATED = ("create_new_study", "_create_new_trial", "delete_study", "get_heartbeat_interval",
                "get_failed_trial_callback", "get_heartbeat_stale_trial_callback")
for _name in REPEATED:
    if hasattr(optuna.storages.RDBStorage, _name):
        setattr(RidingStorage, _name, _again(_name))
