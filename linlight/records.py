"""What a run writes down beside its curves: the settings and software of every segment of training.

A run is trained in segments: the first ``linlight fit``, then each ``--ckpt_path`` resume. Each segment
keeps its own resolved config, so a resume with other settings never overwrites the record:
``config.yaml`` (the first), ``config.resume-1.yaml``, ``config.resume-2.yaml``, ... Each stays a config
that ``linlight fit --config`` accepts. ``segments.yaml`` lists the segments in order: the config file,
the epoch it started from, the checkpoint it resumed, when, where (host, pid) and with which versions of
python, torch, lightning and linlight. ``config_changes`` says what changed between segments.

Checkpoints carry the versions they were saved with (``linlight_versions``, beside Lightning's own
``pytorch-lightning_version``); resuming one saved with other versions prints a one-line warning.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import re
import socket
import sys
from pathlib import Path
from typing import Any

import lightning
import torch
import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from linlight.atomic import write_text_atomically
from linlight.errors import WriteFailed

FIRST_CONFIG = "config.yaml"
SEGMENTS = "segments.yaml"
VERSIONS_KEY = "linlight_versions"  # in every checkpoint linlight saves
NOT_SETTINGS = {"ckpt_path", "config", "trainer.default_root_dir"}  # how a segment was started, and where


def software_versions() -> dict[str, str]:
    """The versions a run trains with (a copy: every checkpoint carries them)."""
    return dict(_versions())


@functools.cache
def _versions() -> dict[str, str]:
    # Read once per process: importlib.metadata scans the installed packages (about 3 ms), and every checkpoint
    # saved, or held in memory (a best with early stopping, at each improvement), asks again.
    try:
        from importlib.metadata import version

        own = version("linlight")
    except Exception:  # running from a source tree that is not installed
        own = "unknown"
    return {"python": platform.python_version(), "torch": str(torch.__version__),
            "lightning": str(lightning.__version__), "linlight": own}


def segment_configs(run_dir: str | Path) -> list[Path]:
    """The run's config files in training order: ``config.yaml``, ``config.resume-1.yaml``, ..."""
    run_dir = Path(run_dir)
    resumes = sorted((int(m.group(1)), p) for p in run_dir.glob("config.resume-*.yaml")
                      if (m := re.fullmatch(r"config\.resume-(\d+)\.yaml", p.name)))
    first = [run_dir / FIRST_CONFIG] if (run_dir / FIRST_CONFIG).is_file() else []
    return first + [p for _, p in resumes]


def latest_config(run_dir: str | Path) -> Path | None:
    """The config the run's latest segment trained with (the defaults for its next resume)."""
    configs = segment_configs(run_dir)
    return configs[-1] if configs else None


def next_config_name(run_dir: str | Path) -> str:
    existing = segment_configs(run_dir)
    if not (Path(run_dir) / FIRST_CONFIG).is_file():
        return FIRST_CONFIG
    n = len(existing)
    while (Path(run_dir) / f"config.resume-{n}.yaml").exists():
        n += 1
    return f"config.resume-{n}.yaml"


def read_segments(run_dir: str | Path) -> list[dict[str, Any]]:
    try:
        segments = yaml.safe_load((Path(run_dir) / SEGMENTS).read_text())
    except (OSError, yaml.YAMLError):
        return []
    return segments if isinstance(segments, list) else []


def config_changes(run_dir: str | Path) -> list[str]:
    """One line per resume that changed settings, e.g. ``resume 1 (from epoch 120): model.lr 0.01 -> 0.05``."""
    run_dir = Path(run_dir)
    starts = {s.get("config"): s.get("start_epoch") for s in read_segments(run_dir)}
    lines, previous = [], None
    for i, path in enumerate(segment_configs(run_dir)):
        settings = _flat(_load(path))
        if previous is not None:
            changed = [f"{k} {_show(previous.get(k))} -> {_show(settings.get(k))}"
                       for k in sorted(previous.keys() | settings.keys())
                       if k.split(".")[0] not in NOT_SETTINGS and k not in NOT_SETTINGS
                       and previous.get(k) != settings.get(k)]
            if changed:
                start = starts.get(path.name)
                since = f" (from epoch {start})" if start is not None else ""
                lines.append(f"resume {i}{since}: {', '.join(changed)}")
        previous = settings
    return lines


def _load(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _show(value: Any) -> str:
    return "unset" if value is None else str(value)


def _run_dir(trainer: Trainer) -> Path:
    """The run folder, as rank 0 knows it, without ``trainer.log_dir`` (a broadcast every rank must join)."""
    logger = trainer.logger
    if isinstance(logger, (TensorBoardLogger, CSVLogger)):
        return Path(logger.log_dir)
    return Path(logger.save_dir if logger is not None and logger.save_dir else trainer.default_root_dir)


class RunRecord(SaveConfigCallback):
    """Saves each fit segment's config as its own file, lists the segments, stamps and checks versions.

    Lightning's ``SaveConfigCallback`` writes one ``config.yaml`` when the fit is set up (a resume overwrites
    it or refuses); this one writes the segment's own file atomically, on rank 0, with its entry in
    ``segments.yaml``, when training starts: a fit that fails before that, or a resume with nothing left to
    train (it never starts), records no segment. (``save_config`` is the documented hook; ``save_to_log_dir=
    False`` turns off the parent's own write.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "save_to_log_dir": False})
        self._record = False
        self._ckpt_versions: dict[str, str] | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._record = not trainer.fast_dev_run  # written when training starts; fast_dev_run writes nothing

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[VERSIONS_KEY] = software_versions()

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if not trainer.is_global_zero or trainer.state.fn != "fit":
            return
        saved = checkpoint.get(VERSIONS_KEY) or {"lightning": checkpoint.get("pytorch-lightning_version")}
        now = software_versions()
        differ = [k for k in ("torch", "lightning", "linlight", "python") if saved.get(k) and saved[k] != now[k]]
        if differ:
            was = ", ".join(f"{k} {saved[k]}" for k in differ)
            print(f"linlight: warning: {trainer.ckpt_path} was saved with {was} (now "
                  f"{', '.join(f'{k} {now[k]}' for k in differ)}): the resumed run may not match an "
                  "uninterrupted one bit for bit", file=sys.stderr)

    def save_search_config(self, trainer: Trainer) -> None:
        """``linlight lr_find``'s settings as the ``config.yaml`` of its run folder: the search trains no segment
        (Lightning's finder runs its loop with its own callback alone), so this is all it records."""
        path = _run_dir(trainer) / "config.yaml"
        try:
            write_text_atomically(path, self.parser.dump(self.config, skip_none=False))
        except OSError as e:
            raise WriteFailed("write the run's config", path, e) from None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or not self._record:
            return
        run_dir = _run_dir(trainer)
        name = next_config_name(run_dir)
        path = run_dir / name
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomically(path, self.parser.dump(self.config, skip_none=False))
        except OSError as e:
            raise WriteFailed("write the run's config", path, e) from None
        segments = read_segments(run_dir)
        segments.append({
            "segment": len(segments), "config": name, "start_epoch": trainer.current_epoch,
            "ckpt_path": str(trainer.ckpt_path) if trainer.ckpt_path else None,
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "host": socket.gethostname(), "pid": os.getpid(), "versions": software_versions(),
        })
        try:
            write_text_atomically(run_dir / SEGMENTS, yaml.safe_dump(segments, sort_keys=False))
        except OSError as e:
            raise WriteFailed("write the run's record", run_dir / SEGMENTS, e) from None
