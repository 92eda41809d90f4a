"""A sweep's storage faults: the errors it says in one line, and how a database failure is recognized under the
errors that Optuna and SQLAlchemy wrap it in (Optuna's ``StorageInternalError``, or an error of Optuna's own
that the failure caused, such as an ``UnboundLocalError`` in its trial loop).
"""

from __future__ import annotations

import optuna
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from linlight.errors import LinlightError


class StorageError(LinlightError):
    """The study's database cannot be opened or was lost; the message names it with its password hidden."""


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
