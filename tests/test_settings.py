"""Every Trainer setting linlight passes through to Lightning, given a bad value, ends with one short
`linlight: error:` line naming it, a non-zero exit and no traceback, and leaves no run folder behind.

The cases are generated from the `linlight fit` parser's own `--trainer.*` options: each option whose type
refuses a word gets one (the parser's error), and every option gets the values its meaning refuses
(`BAD`, which must name every option the parser has, so a Lightning release that adds one fails here until
it has its cases). They run in this process (`conftest.cli`): being a process changes nothing here.
"""

from __future__ import annotations

import datetime
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
import torch
from conftest import cli, linlight

from linlight.cli import LinlightCLI

NO_GPU = not torch.cuda.is_available()

# Values each option's meaning refuses, though its type takes them. "{file}" is a file (not a folder).
BAD: dict[str, list[str]] = {
    "accelerator": ["bogus", *(["gpu"] if NO_GPU else [])],
    "strategy": ["bogus", "ddp_spawn"],
    "devices": ["0", "-3", "abc"],
    "num_nodes": ["0"],
    "precision": ["transformer-engine"],  # needs a package that is not installed (and a GPU)
    "logger": [],
    "callbacks": [],
    "fast_dev_run": ["-1"],
    "max_epochs": ["-5"],
    "min_epochs": ["-2"],
    "max_steps": ["-5"],
    "min_steps": ["-3"],
    "max_time": ["bogus", "-1"],
    "limit_train_batches": ["-1", "1.5"],
    "limit_val_batches": ["1.5"],
    "limit_test_batches": ["-2"],
    "limit_predict_batches": ["-2"],
    "overfit_batches": ["-1"],
    "val_check_interval": ["0", "-1", "bogus"],
    "check_val_every_n_epoch": ["0", "-2"],
    "num_sanity_val_steps": ["-5"],
    "log_every_n_steps": ["0"],
    "enable_checkpointing": ["false"],  # linlight's runs keep last.ckpt
    "enable_progress_bar": [],
    "enable_model_summary": [],
    "accumulate_grad_batches": ["0"],
    "gradient_clip_val": ["-1"],
    "gradient_clip_algorithm": ["bogus"],
    "deterministic": [],
    "benchmark": [],
    "inference_mode": [],
    "use_distributed_sampler": [],
    "profiler": ["bogus"],
    "detect_anomaly": [],
    "barebones": ["true"],  # turns off the logger and checkpoints a run is made of
    "plugins": [],
    "sync_batchnorm": [],
    "reload_dataloaders_every_n_epochs": ["-1"],
    "default_root_dir": ["{file}/runs"],
    "enable_autolog_hparams": [],
    "model_registry": ["my-registry"],  # never used: linlight's runs have their own checkpoint callback
}
WORD = "not-a-value"


class _Parsed(Exception):
    pass


class _ParserOnly(LinlightCLI):
    def parse_arguments(self, parser, args):
        raise _Parsed(self._parser("fit"))


def fit_trainer_options() -> dict[str, Any]:
    """``linlight fit``'s ``--trainer.*`` options and their types, from its own parser."""
    try:
        _ParserOnly(args=["fit"])
    except _Parsed as parsed:
        parser = parsed.args[0]
    return {a.dest.split(".", 1)[1]: a._typehint for a in parser._actions
            if a.dest.startswith("trainer.") and hasattr(a, "_typehint") and not a.dest.endswith(".help")}


def refuses_a_word(hint: Any) -> bool:
    """Whether the type refuses an arbitrary word: it takes no string, path or duration."""
    atoms = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    return not any(a in (str, Path, datetime.timedelta) for a in atoms)


OPTIONS = fit_trainer_options()
CASES = [(name, WORD) for name, hint in OPTIONS.items() if refuses_a_word(hint)] + [
    (name, value) for name, values in BAD.items() for value in values]


def test_every_trainer_option_has_its_bad_values():
    assert set(BAD) == set(OPTIONS), "a Trainer option without its cases (or a case for one that is gone)"
    covered = {name for name, _ in CASES}
    assert covered == set(OPTIONS), f"options with no bad value tried: {sorted(set(OPTIONS) - covered)}"
    assert len(OPTIONS) >= 40  # the parser was read, not an empty list


@pytest.mark.parametrize("name, value", CASES, ids=[f"{n}={v}" for n, v in CASES])
def test_a_bad_trainer_setting_is_one_line_and_leaves_no_run(tmp_path, name, value):
    (tmp_path / "file").write_text("a file, not a folder")
    value = value.format(file=tmp_path / "file")
    extra = [] if name == "max_epochs" else ["--trainer.max_epochs", "3"]  # (should a bad value train)
    code, out, err = cli("fit", f"--trainer.{name}", value, *extra, cwd=tmp_path)
    assert code in (1, 2), f"exit {code}:\n{out}\n{err}"
    assert "Traceback" not in out + err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("linlight: error: ") and f"trainer.{name}" in last, last
    assert len(last) < 400, f"not a short line ({len(last)} characters): {last}"
    assert "Seed set" not in err, err
    assert not (tmp_path / "lightning_logs").exists(), "a failed command left a run folder"


@pytest.mark.parametrize("args", [["--trainer.max_epochs", "-5"], ["--trainer.check_val_every_n_epoch", "0"]],
                         ids=["refused-by-lightning", "refused-by-linlight"])
def test_a_bad_trainer_setting_as_a_shell_sees_it(tmp_path, args):
    """As a process, with Python's default warnings: the error is all it prints (no "Seed set to 42" before
    it), and the exit code is 1."""
    proc = linlight("fit", *args, cwd=tmp_path, check=False, env={"PYTHONWARNINGS": ""})
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"linlight: error: {' '.join(args)}: "), proc.stderr
    assert not (tmp_path / "lightning_logs").exists()


def test_fast_dev_run_checks_the_loops_and_writes_nothing(tmp_path):
    """Lightning's fast_dev_run (one batch of each loop, no logger, no checkpoint): linlight claims no run
    folder for it and says that nothing was written."""
    code, out, err = cli("fit", "--trainer.fast_dev_run", "true", "--trainer.enable_progress_bar", "false",
                         cwd=tmp_path)
    assert code == 0, err
    assert out.strip().splitlines() == ["linlight: fast_dev_run: 1 batch(es) of training and validation ran as a "
                                        "check; nothing was written (no run folder, no checkpoint)"]
    assert list(tmp_path.iterdir()) == []
