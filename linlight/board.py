"""What TensorBoard shows of a run: the tags, the custom-scalars layout and the HPARAMS record.

TensorBoard groups tags by the part before the first ``/``, sorts the groups by name and opens the first
two (TIME SERIES and SCALARS alike; the rest start collapsed). linlight's tags are laid out for that:

- ``loss/train``, ``loss/val``: the tutorial's loss curves (its "test loss" is ``loss/val``), every epoch;
- ``params/weight``, ``params/bias`` beside the true line's ``params/weight_true``, ``params/bias_true``
  and their absolute errors ``params/weight_error``, ``params/bias_error``, every epoch (data from a CSV
  file has no true line: only the learned one);
- ``val/mae``, ``val/mse``, ``val/r2``: torchmetrics on the validation split, every epoch (collapsed);
- ``test/loss``, ``test/mae``, ``test/mse``, ``test/r2``: one point per ``linlight test``, at the epoch the
  tested weights come from (collapsed, so no single-point chart is in the view TensorBoard opens on);
- images (``linlight.plotting.Plots``) in ``plots/``, which sorts after ``params``.

So the first two groups are ``loss`` and ``params``: the curves and the learned line, without scrolling.
The step of every scalar is the epoch. HPARAMS reads the last value of the per-epoch tags it is pointed at
(``HPARAMS_METRICS``), so no extra single-point ``hparams/...`` scalars are written. CUSTOM SCALARS draws
the two losses in one chart and learned against true in one chart each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard.summary import hparams

from linlight.errors import WriteFailed

# The tags of the HPARAMS table's metric columns: the same in every run, since TensorBoard takes the
# columns from the first run it finds.
HPARAMS_METRICS = ("loss/val", "loss/train", "val/r2", "params/weight_error", "params/bias_error")

# TensorBoard's CUSTOM SCALARS tab. Its tags are regular expressions matched at the start of a tag
# (re.match), so each is anchored at the end too, to draw exactly the tag named.
CUSTOM_SCALARS = {
    "linlight": {
        "loss: train and val": ["Multiline", ["^loss/train$", "^loss/val$"]],
        "weight: learned, and true (the flat line)": ["Multiline", ["^params/weight$", "^params/weight_true$"]],
        "bias: learned, and true (the flat line)": ["Multiline", ["^params/bias$", "^params/bias_true$"]],
        "absolute error (weight, bias)": ["Multiline", ["^params/weight_error$", "^params/bias_error$"]],
    }
}


class RunLogger(TensorBoardLogger):
    """Lightning's TensorBoard logger for a linlight run folder, with the run's layout and HPARAMS record.

    A step's scalars go into one event (one write), not one event each as ``add_scalar`` writes them: with
    eleven scalars an epoch, that is most of the logger's cost. TensorBoard reads both the same way.

    A resumed run (``purge_step`` set) starts its event file in a later second than the run's earlier ones:
    TensorBoard reads a run's files in name order, the names begin with the second a file was opened in, and
    within one second the process ids would decide, so a run resumed at once could show its epochs shuffled.

    A failed event write (a full disk, a quota, a read-only folder) is one ``WriteFailed`` naming the run
    folder. TensorBoard writes events from a background thread, which on an ``OSError`` prints it as a
    thread traceback, drops the queued events and dies; the error comes back at the next write or flush,
    which Lightning re-raises as "you tried to log 0.01 which is currently not supported". The thread's
    duplicate report is kept off stderr, and a failed run's final flush fails quietly (the first error is the
    one to report). Checkpoints are written only after a successful flush (``RunCheckpoint``), so the events
    of every epoch a checkpoint holds are on disk.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _quiet_event_writer_thread()
        if kwargs.get("purge_step") is not None:
            opened = [int(p.name.split(".")[3]) for p in Path(self.log_dir).glob("events.out.tfevents.*")]
            while opened and int(time.time()) <= max(opened):
                time.sleep(0.02)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        try:
            if self._prefix or not all(isinstance(v, (int, float)) or getattr(v, "ndim", 1) == 0
                                       for v in metrics.values()):
                super().log_metrics(metrics, step)
                return
            values = [Summary.Value(tag=k, simple_value=float(v)) for k, v in metrics.items()]
            self.experiment._get_file_writer().add_summary(Summary(value=values), step)
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

    def describe_run(self, params: dict[str, Any]) -> None:
        """Write the custom-scalars layout and the HPARAMS record of the run (its settings and metric tags).

        Lightning's ``log_hyperparams(params, metrics)`` would also log each metric once more as a scalar;
        the HPARAMS plugin reads the metric tags' own last values, so only the summaries are written.
        """
        try:
            writer = self.experiment
            writer.add_custom_scalars(CUSTOM_SCALARS)
            plain = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in params.items()}
            for summary in hparams(plain, dict.fromkeys(HPARAMS_METRICS, 0.0)):
                writer._get_file_writer().add_summary(summary)
            writer.flush()
        except OSError as e:
            raise self._failed(e) from None


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
