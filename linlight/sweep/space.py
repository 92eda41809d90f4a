"""A sweep's search space: the YAML file that says what every trial shares and what it searches, checked before
anything runs.

    config: exercise.yaml              # linlight config(s) every trial starts from, relative to this file
    fixed:                             # settings every trial shares, as `linlight fit --KEY VALUE` would set them
      data.batch_size: null
    space:                             # the searched settings, each an Optuna distribution
      model.lr: {type: float, low: 1.0e-3, high: 1.0, log: true}
      trainer.max_epochs: {type: int, low: 20, high: 300, step: 20}
      data.batch_size: {type: categorical, choices: [null, 8, 16]}

``load_space`` reads it (every mistake is one ``ConfigError`` naming the file and the key); ``check_space`` parses
trials at the ends of every range, and with every choice, with the ``linlight fit`` parser (``LinlightCLI``) and
builds their model and data, so that a setting no trial could run is refused before the study starts.
"""

from __future__ import annotations

import argparse
import json
import math
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from linlight.cli import LinlightCLI
from linlight.errors import ConfigError, LinlightError

if TYPE_CHECKING:
    import optuna

KINDS = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"}, "categorical": {"choices"}}


@dataclass(frozen=True)
class Param:
    """One searched setting and its Optuna distribution, as written in the space file."""

    name: str
    kind: str
    low: float = 0
    high: float = 0
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.name, list(self.choices))

    def extremes(self) -> list[Any]:
        """The values that bound what a trial can get: both ends of a range, every choice."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


@dataclass(frozen=True)
class Space:
    """A search space file: linlight configs and fixed settings every trial shares, and the searched ones."""

    path: Path
    configs: tuple[str, ...]
    fixed: dict[str, Any]
    params: dict[str, Param]

    def fit_args(self, values: dict[str, Any], root: Path) -> list[str]:
        """The ``linlight fit`` arguments of a trial with these values."""
        args = ["fit"]
        for config in self.configs:
            args += ["--config", config]
        for key, value in {**self.fixed, **values}.items():
            args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
        return [*args, "--trainer.default_root_dir", str(root)]




def load_space(path: Path) -> Space:
    """Read and check a search space file; every mistake is a ``ConfigError`` naming the file and the key."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read search space {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(e).split())}") from None
    example = "space: {model.lr: {type: float, low: 1.0e-3, high: 1.0, log: true}}"
    if not isinstance(doc, dict) or not isinstance(doc.get("space"), dict) or not doc["space"]:
        raise ConfigError(f"{path}: expected a 'space' mapping of settings to distributions, e.g. {example}")
    if unknown := sorted(set(doc) - {"config", "fixed", "space"}):
        raise ConfigError(f"{path}: unknown top-level key(s) {unknown}; allowed: config, fixed, space")
    configs = doc.get("config") or []
    configs = [configs] if isinstance(configs, str) else configs
    if not isinstance(configs, list) or not all(isinstance(c, str) for c in configs):
        raise ConfigError(f"{path}: 'config' must be a file name or a list of them")
    resolved = tuple(str((path.parent / c).resolve()) for c in configs)
    for name, full in zip(configs, resolved):
        if not Path(full).is_file():
            raise ConfigError(f"{path}: config {name} not found at {full} (paths are relative to the space file)")
    fixed = doc.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ConfigError(f"{path}: 'fixed' must map settings to values, e.g. fixed: {{data.batch_size: 8}}")
    params = {str(name): _param(path, str(name), spec) for name, spec in doc["space"].items()}
    for key in [*map(str, fixed), *params]:
        if key in fixed and key in params:
            raise ConfigError(f"{path}: {key} is both fixed and searched")
        if key == "trainer.default_root_dir":
            raise ConfigError(f"{path}: {key} is the sweep's root: set it with linlight sweep --root")
    return Space(path, resolved, {str(k): v for k, v in fixed.items()}, params)


def _param(path: Path, name: str, spec: Any) -> Param:
    where = f"{path}: space.{name}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping such as {{type: float, low: 1.0e-3, high: 1.0}}")
    kind = spec.get("type")
    if kind not in KINDS:
        raise ConfigError(f"{where}: unknown type {kind!r}; use float, int or categorical")
    if unknown := sorted(set(spec) - KINDS[kind] - {"type"}):
        raise ConfigError(f"{where}: unknown field(s) {unknown} for type {kind}; allowed: {sorted(KINDS[kind])}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: 'choices' must be a non-empty list")
        if bad := [c for c in choices if c is not None and not isinstance(c, (bool, int, float, str))]:
            raise ConfigError(f"{where}: choices must be numbers, strings, true/false or null, got {bad[0]!r}")
        if len({json.dumps(c) for c in choices}) < len(choices):
            raise ConfigError(f"{where}: choices repeat a value")
        return Param(name, kind, choices=tuple(choices))
    low, high = (_number(where, spec, field, integral=kind == "int") for field in ("low", "high"))
    log, step = spec.get("log", False), spec.get("step")
    if not low < high:
        raise ConfigError(f"{where}: low ({low}) must be below high ({high})")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: 'log' must be true or false, got {log!r}")
    if step is not None:
        step = _number(where, spec, "step", integral=kind == "int")
        if log or step <= 0:
            raise ConfigError(f"{where}: 'step' must be positive and cannot go with log: true")
        if abs((n := (high - low) / step) - round(n)) > 1e-9 * max(1.0, n):
            raise ConfigError(f"{where}: high - low ({high - low}) must be a multiple of step ({step})")
    if log and low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0, got {low}")
    return Param(name, kind, low, high, log, step)


def _number(where: str, spec: dict, field: str, integral: bool) -> float:
    value = spec.get(field)
    if isinstance(value, str):  # YAML reads 1e-3 (no dot) as a string
        with suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: '{field}' must be a finite number, got {spec.get(field)!r}")
    if integral:
        if value != int(value):
            raise ConfigError(f"{where}: '{field}' must be a whole number for type int, got {value}")
        return int(value)
    return float(value)


class _Checked(Exception):
    """A trial's arguments parsed and its model and data were built."""


class CheckCLI(LinlightCLI):
    """``LinlightCLI`` that parses a trial and builds its model and data, then stops before the Trainer."""

    def init_parser(self, **kwargs: Any) -> Any:
        return super().init_parser(**{**kwargs, "exit_on_error": False})  # raise, so the error names the space file

    def instantiate_trainer(self, **kwargs: Any) -> NoReturn:
        raise _Checked


def check_space(space: Space, root: Path) -> None:
    """Parse trials at the ends of every range (and with every choice) as ``linlight fit`` would, before any runs."""
    extremes = {name: p.extremes() for name, p in space.params.items()}
    for i in range(max(len(values) for values in extremes.values())):
        values = {name: options[i % len(options)] for name, options in extremes.items()}
        try:
            CheckCLI(args=space.fit_args(values, root))
        except _Checked:
            continue
        except (argparse.ArgumentError, LinlightError) as e:
            trial = ", ".join(f"{k}={v!r}" for k, v in values.items())
            raise ConfigError(f"{space.path}: a trial with {trial} is not a valid `linlight fit`: "
                              f"{' '.join(str(e).split())}") from None


