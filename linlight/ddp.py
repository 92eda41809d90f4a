"""DDP that gives up on a lost peer within a minute instead of waiting on a collective for 30.

A peer killed outright is noticed at once over gloo (its sockets close: "Connection reset by peer"); a
peer that hangs (stopped, stuck in I/O, a node cut off) is noticed only when a collective times out,
and ``torch.distributed``'s default for that, which Lightning keeps, is 30 minutes. linlight's
``DDPStrategy`` sets 60 seconds (``DEFAULT_TIMEOUT``); ``use_for_ddp_names`` makes ``--trainer.strategy ddp``
(and Lightning's other DDP names, and ``auto`` with several devices) build it. Another timeout:

    linlight fit --trainer.strategy linlight.ddp.DDPStrategy --trainer.strategy.timeout 0:05:00

The timeout bounds every collective, so a rank that waits longer than that for another (rank 0 writing a
very large checkpoint while the others wait at the barrier) also fails: raise it for large models.

When the run fails, the process that launched the other local ranks (Lightning's subprocess launcher;
they are its children) kills any of them still alive as it exits, so a hung rank does not outlive the run.
It does so at exit, after the error is printed: Lightning's child-process observer kills the launching
process as soon as it sees a child die, which would cut the error short.
"""

from __future__ import annotations

import atexit
import subprocess
from datetime import timedelta
from typing import Any

from lightning.pytorch.strategies import DDPStrategy as LightningDDPStrategy
from lightning.pytorch.strategies import StrategyRegistry

DEFAULT_TIMEOUT = timedelta(seconds=60)


class DDPStrategy(LightningDDPStrategy):
    """Lightning's ``DDPStrategy`` with a 60 s collective timeout and no rank left behind after a failure.

    Args:
        timeout: how long a collective (all-reduce, barrier, broadcast) waits for the other processes.
    """

    def __init__(self, timeout: timedelta | None = DEFAULT_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(timeout=timeout, **kwargs)

    def on_exception(self, exception: BaseException) -> None:
        super().on_exception(exception)
        children = list(getattr(self.launcher, "procs", None) or [])  # the subprocess launcher's local ranks
        if children:
            atexit.register(_kill_survivors, children)


def _kill_survivors(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.kill()


def use_for_ddp_names() -> None:
    """Make Lightning's DDP strategy names (``ddp``, ``ddp_spawn``, ...) build linlight's ``DDPStrategy``."""
    for name in StrategyRegistry.available_strategies():
        entry = StrategyRegistry[name]
        if entry["strategy"] is LightningDDPStrategy:
            StrategyRegistry.register(
                name, DDPStrategy, description=f"{entry['description']}, {DEFAULT_TIMEOUT.seconds} s timeout",
                override=True, **entry["init_params"],
            )
