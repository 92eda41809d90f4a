"""DDP that gives up on a lost peer within a minute instead of waiting on a collective for 30.

A peer killed outright is noticed at once over gloo (its sockets close: "Connection reset by peer"); a
peer that hangs (stopped, stuck in I/O, a node cut off) is noticed only when a collective times out,
and ``torch.distributed``'s default for that, which Lightning keeps, is 30 minutes. linlight's
``DDPStrategy`` sets 60 seconds (``DEFAULT_TIMEOUT``); ``use_for_ddp_names`` makes ``--trainer.strategy ddp``
(and Lightning's other DDP names, and ``auto`` with several devices) build it. Another timeout:

    linlight fit --trainer.strategy linlight.ddp.DDPStrategy --trainer.strategy.timeout 0:05:00

The timeout bounds every collective, so a rank that waits longer than that for another (rank 0 writing a
very large checkpoint while the others wait at the barrier) also fails: raise it for large models.

The process the user started launches the other local ranks as its children (Lightning's subprocess
launcher). When the run fails there, it kills those still alive as it exits, after its error is printed,
so a hung rank does not outlive the run. When a child dies, Lightning's own watch over them
(``_ChildProcessObserver``) SIGKILLs the launching process within 5 s, usually before that process has
said why it stops (it is told at once, by its next collective): ``PatientLauncher`` gives it the DDP
timeout plus ``GRACE_S`` to stop by itself, and only then ends it, saying so.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from lightning.fabric.utilities.distributed import _set_num_threads_if_needed
from lightning.pytorch.strategies import DDPStrategy as LightningDDPStrategy
from lightning.pytorch.strategies import StrategyRegistry
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from linlight.summary import linlight_fit, shell

DEFAULT_TIMEOUT = timedelta(seconds=60)
GRACE_S = 30.0  # beyond the timeout, for the launching process to report a dead child by itself


class DDPStrategy(LightningDDPStrategy):
    """Lightning's ``DDPStrategy`` with a 60 s collective timeout and no rank left behind after a failure.

    Args:
        timeout: how long a collective (all-reduce, barrier, broadcast) waits for the other processes.
    """

    def __init__(self, timeout: timedelta | None = DEFAULT_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(timeout=timeout, **kwargs)
        self.grace_s = (timeout.total_seconds() if timeout else 0.0) + GRACE_S

    def _configure_launcher(self) -> None:
        # private override: Lightning's launcher's observer kills this process before it can report (see above)
        super()._configure_launcher()
        if type(self._launcher) is _SubprocessScriptLauncher:
            self._launcher = PatientLauncher(self.cluster_environment, self.num_processes, self.num_nodes,
                                             grace_s=self.grace_s)

    def on_exception(self, exception: BaseException) -> None:
        super().on_exception(exception)
        children = list(getattr(self.launcher, "procs", None) or [])  # the subprocess launcher's local ranks
        if children:
            atexit.register(_kill_survivors, children)


class PatientLauncher(_SubprocessScriptLauncher):
    """Lightning's launcher of the local ranks, watching them with ``ChildWatch`` instead of Lightning's observer."""

    def __init__(self, *args: Any, grace_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grace_s = grace_s

    def launch(self, function: Callable, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
        # Lightning's launch() with ChildWatch for _launch_process_observer (private override, see the module)
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
            ChildWatch(self.procs, self.grace_s).start()
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)


class ChildWatch(threading.Thread):
    """When a local rank dies, give this process ``grace_s`` to stop by itself, then stop it, saying so."""

    def __init__(self, children: list[subprocess.Popen], grace_s: float) -> None:
        super().__init__(daemon=True, name="linlight-child-watch")  # ends with the process
        self.children, self.grace_s = children, grace_s

    def run(self) -> None:
        while True:
            time.sleep(1.0)
            codes = [child.poll() for child in self.children]
            if all(code == 0 for code in codes):
                return
            dead = [(rank, code) for rank, code in enumerate(codes, start=1) if code not in (None, 0)]
            if dead:
                break
        time.sleep(self.grace_s)  # normally this process reports the lost rank and exits meanwhile
        rank, code = dead[0]
        sys.stderr.write(
            f"linlight: error: the DDP process of local rank {rank} ended (exit code {code}) and this process did not "
            f"stop by itself within {self.grace_s:.0f} s, so it is stopped now; continue from the last checkpoint "
            f"with: {shell(linlight_fit())} --ckpt_path last, in the run's root folder\n")
        sys.stderr.flush()
        _kill_survivors(self.children)
        os.kill(os.getpid(), signal.SIGKILL)


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
