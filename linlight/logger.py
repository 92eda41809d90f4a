"""The run's TensorBoard logger: Lightning's ``TensorBoardLogger``, with failed event writes said clearly.

TensorBoard writes events from a background thread (``EventFileWriter``). When a write fails (a full
disk, a quota, a read-only folder) the thread stores the ``OSError``, prints it as an uncaught thread
exception, drops every queued event and dies; the error surfaces in the training process at the next
``add_scalar`` or ``flush``. Nothing is lost silently, but the error names no file, arrives with two
tracebacks, and Lightning's ``log_metrics`` re-raises it as "you tried to log 0.01 which is currently not
supported". ``RunLogger`` turns it into ``WriteFailed`` naming the run folder, keeps the thread's
duplicate report off stderr, and lets a failed run's final flush fail quietly (the first error is the
one to report). Checkpoints are written only after a successful flush (``RunCheckpoint``), so the
events of every epoch a checkpoint holds are on disk.
"""

from __future__ import annotations

import threading
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger

from linlight.errors import WriteFailed


class RunLogger(TensorBoardLogger):
    """``TensorBoardLogger`` that reports a failed event write as one ``WriteFailed`` naming the run folder."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _quiet_event_writer_thread()

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        try:
            super().log_metrics(metrics, step)
        except OSError as e:
            raise self._failed(e) from None
        except ValueError as e:  # Lightning re-raises any add_scalar error as "you tried to log X ..."
            if isinstance(e.__cause__, OSError):
                raise self._failed(e.__cause__) from None
            raise

    def log_hyperparams(self, params: Any, metrics: dict[str, Any] | None = None, step: int | None = None) -> None:
        try:
            super().log_hyperparams(params, metrics, step)
        except OSError as e:
            raise self._failed(e) from None

    def save(self) -> None:
        try:
            super().save()
        except OSError as e:
            raise self._failed(e) from None

    def finalize(self, status: str) -> None:
        try:
            super().finalize(status)
        except OSError as e:
            if status == "success":
                raise self._failed(e) from None

    def _failed(self, e: OSError) -> WriteFailed:
        return WriteFailed("write TensorBoard logs in", self.log_dir, e)


def _quiet_event_writer_thread() -> None:
    """Keep TensorBoard's writer thread from printing an ``OSError`` the training process raises anyway."""
    previous = threading.excepthook
    if getattr(previous, "linlight_quiet", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread":
            return
        previous(args)

    hook.linlight_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook
