"""Settings a user gives, checked before anything is written, and what is wrong with them said in one line.

    linlight fit --trainer.max_epochs -5          # linlight: error: --trainer.max_epochs -5: `max_epochs` must be ...
    linlight fit --trainer.precision 7            # linlight: error: trainer.precision: expected one of 64, 32, ...
    linlight fit --trainer.max_epoch 10           # ... --trainer.max_epoch 10 (did you mean --trainer.max_epochs?)

Three kinds of bad setting, three places:

- a value of the wrong type or an unknown option fails in the parser (jsonargparse); ``parse_error`` turns its
  message (for a union type, a dump of every alternative's failure, hundreds of characters) into the option,
  what it expects and what it got, and a mistyped option into a "did you mean";
- a value Lightning refuses when the ``Trainer`` (or ``ModelCheckpoint``, ...) is built
  (``MisconfigurationException``, ``ValueError``, ``TypeError``, ``ImportError`` for a missing package):
  ``setting_error`` names the setting (the one its message names, else the one that fails alone in a
  ``Trainer`` of its own) beside Lightning's own message;
- a value Lightning takes and trips over later, or never notices (``check_trainer``): a
  ``check_val_every_n_epoch`` of 0 is a ZeroDivisionError in the first epoch, a negative ``min_epochs`` is
  silently none. These few are checked here, before a run folder is claimed.
"""

from __future__ import annotations

import datetime
import difflib
import logging
import re
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from inspect import isclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from linlight.errors import ConfigError

# The least sensible value of Trainer settings that Lightning takes below it when the Trainer is built: 0 for the
# first three is a ZeroDivisionError in the first epoch, a negative count silently means none, a negative clip
# value no clipping.
TRAINER_LEAST = {"check_val_every_n_epoch": 1, "accumulate_grad_batches": 1, "log_every_n_steps": 1,
                 "min_epochs": 0, "min_steps": 0, "num_sanity_val_steps": -1, "gradient_clip_val": 0}
# Lightning's multiprocessing start methods that re-create the model in new processes and hand the weights
# back through a temporary file at the end; linlight's DDP starts each process as a script (``ddp``).
SPAWNING = {"spawn", "fork", "forkserver"}


def check_trainer(trainer: Mapping[str, Any]) -> None:
    """Refuse the Trainer settings Lightning would take and trip over later (see the module docstring)."""
    for key, least in TRAINER_LEAST.items():
        value = trainer.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not value >= least:
            what = {1: "a positive integer", 0: "zero or more", -1: "zero or more (-1: all)"}[least]
            raise ConfigError(f"--trainer.{key} {value}: it must be {what}")
    interval = trainer.get("val_check_interval")
    if isinstance(interval, (int, float)) and not isinstance(interval, bool) and not interval > 0:
        raise ConfigError(f"--trainer.val_check_interval {interval}: it must be more than 0 (a fraction of an "
                          "epoch, or a number of batches)")
    if trainer.get("enable_checkpointing") is False:
        raise ConfigError("--trainer.enable_checkpointing false: linlight runs keep last.ckpt, which --ckpt_path "
                          "last resumes; leave it out (--checkpoint.every_n_epochs N saves less often)")
    if trainer.get("model_registry"):  # Lightning uploads through its own checkpoint callback, never linlight's
        raise ConfigError("--trainer.model_registry: Lightning uploads to a model registry only through the "
                          "checkpoint callback it adds when there is none; linlight's runs keep their checkpoints "
                          "in the run folder: leave it out")
    strategy = trainer.get("strategy")
    if _start_method(strategy) in SPAWNING:
        name = strategy if isinstance(strategy, str) else "with a start_method of spawn or fork"
        raise ConfigError(f"--trainer.strategy {name}: linlight starts each DDP process as a script; use "
                          "--trainer.strategy ddp")


def _start_method(strategy: Any) -> str | None:
    """How a strategy starts its processes: a registered name's start method, or a class's init argument."""
    if isinstance(strategy, str):
        from lightning.pytorch.strategies import StrategyRegistry

        return StrategyRegistry[strategy]["init_params"].get("start_method") if strategy in StrategyRegistry else None
    if isinstance(strategy, Mapping):
        return (strategy.get("init_args") or {}).get("start_method")
    return None


def setting_error(error: Exception, group: str, given: Mapping[str, Any], shown: Mapping[str, str],
                  build: Callable[[dict[str, Any]], Any] | None = None) -> ConfigError:
    """Lightning's refusal of a group's settings (``trainer``, ``checkpoint``, ...), as one line naming the one
    it refused beside its own message.

    Args:
        error: what the class raised when it was built.
        group: the settings' group, as in ``--trainer.max_epochs``.
        given: the group's settings the user set (that differ from the defaults), as the class takes them.
        shown: the same settings as the command line writes them.
        build: builds the class with one setting (and nothing that writes), to find the one that fails alone
            when the message names none.
    """
    message = " ".join(str(error).split())
    message = re.sub(r"<([\w.]+?)\.(\w+) object at 0x[0-9a-f]+>", r"\2", message)  # no memory addresses
    named = [k for k in given if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w])", message)]
    if not named and build is not None:
        named = [k for k in given if _fails_alone(build, k, given[k])]
    if not named:
        named = list(given)
    settings = ", ".join(f"--{group}.{k} {shown.get(k, given[k])}" for k in named) or f"the {group} settings"
    hint = ""
    if group == "trainer" and "accelerator" in named:
        hint = f" (this machine has: {', '.join(available_accelerators())})"
    return ConfigError(f"{settings}: {message}{hint}")


def _fails_alone(build: Callable[[dict[str, Any]], Any], key: str, value: Any) -> bool:
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:  # "GPU available: ..." and the like, once per Trainer built
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build({key: value})
        return False
    except Exception:
        return True
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def available_accelerators() -> list[str]:
    from lightning.pytorch.accelerators import AcceleratorRegistry

    found = []
    for name in AcceleratorRegistry.available_accelerators():
        try:
            if AcceleratorRegistry[name]["accelerator"].is_available():
                found.append(name)
        except Exception:  # an accelerator whose check needs a package that is not installed
            continue
    return found


def parse_error(message: str, actions: Iterable[Any], hints: Mapping[str, Any] | None = None) -> str:
    """A parser error as one short line: the option, what it expects, what it got; or a "did you mean".

    ``hints``: the types of settings the parser holds no action of its own for (those of a class given by class
    path, such as the data's: ``data.weight``), by key.
    """
    actions = list(actions)
    text = " ".join(message.split())
    unknown = re.match(r"unrecognized arguments: (.*)", text)
    if unknown:
        options = [o for a in actions for o in a.option_strings if o.startswith("--") and not o.endswith(".help")]
        options += [f"--{key}" for key in hints or {}]
        guesses = [m for word in unknown.group(1).split() if word.startswith("--")
                   for m in difflib.get_close_matches(word.split("=")[0], options, n=1, cutoff=0.75)]
        return text + (f" (did you mean {' or '.join(dict.fromkeys(guesses))}?)" if guesses else "")
    key = re.search(r'Parser key "([^"]+)"', text)
    given = re.search(r"(?:Given|Got) value: (.*?)(?: \(see: [^)]*\))?$", text)
    hint = next((getattr(a, "_typehint", None) for a in actions if key and a.dest == key.group(1)), None)
    if hint is None and key is not None:
        hint = (hints or {}).get(key.group(1))
    if key is None or given is None or hint is None:
        return text
    value = given.group(1)
    where = text[: text.index('Parser key "')].strip()  # e.g. the config file the value came from
    return f"{where + ' ' if where else ''}{key.group(1)}: expected {describe(hint, value)}, got {value}"


def describe(hint: Any, value: str = "...") -> str:
    """A type as a person reads it: ``list[float] | None`` is "a list of numbers such as [0.5], or null"."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        choices = [c for a in args if get_origin(a) is Literal for c in get_args(a)]
        classes = [a for a in args if _is_class(a)]
        listed = [c for a in args if _is_list(a) and get_args(a) for c in _classes(get_args(a)[0])]
        parts = []
        if choices:
            parts.append("one of " + ", ".join(dict.fromkeys(str(c) for c in choices)))
        if classes or listed:
            names = [c.__name__ for c in dict.fromkeys([*classes, *listed])]
            them = " (or a list of them)" if listed and classes else ""
            parts.append(f"{'a list of ' if listed and not classes else ''}the import path of a "
                         f"{' or '.join(names)}{them}")
        parts += [describe(a, value) for a in args if get_origin(a) is not Literal and a is not type(None)
                  and not _is_class(a) and not (_is_list(a) and get_args(a) and _classes(get_args(a)[0]))]
        if type(None) in args:
            parts.append("null")
        return ", or ".join(parts)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    simple = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string", Path: "a path",
              datetime.timedelta: "a duration (DD:HH:MM:SS)"}
    if hint in simple:
        return simple[hint]
    if _is_list(hint):
        inner = get_args(hint)[0] if get_args(hint) else None
        if inner is not None and _is_list(inner):  # rows, e.g. of features: list[list[float]]
            item = describe(get_args(inner)[0], value) if get_args(inner) else "values"
            return f"a list of rows of {_plural(item)} such as [{value if value.startswith('[') else f'[{value}]'}]"
        item = describe(inner, value) if inner is not None else "values"
        example = value if value.startswith("[") else f"[{value}]"
        return f"a list of {_plural(item)} such as {example}"
    if origin in (dict, Mapping) or hint is dict:
        return "a mapping"
    if _is_class(hint):
        return f"the import path of a {hint.__name__}"
    return str(hint)


def _is_list(hint: Any) -> bool:
    return get_origin(hint) in (list, tuple, set, Iterable)


def _classes(hint: Any) -> list[Any]:
    """The classes a type names: itself, or those of a union."""
    return [a for a in (get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)) if _is_class(a)]


def _is_class(hint: Any) -> bool:
    # get_origin: on Python 3.10 isclass(list[float]) is True
    return (isclass(hint) and get_origin(hint) is None
            and hint not in (bool, int, float, str, Path, datetime.timedelta, dict, type(None)))


def _plural(item: str) -> str:
    words = {"an integer": "integers", "a finite number": "numbers", "a string": "strings",
             "true or false": "booleans"}
    return words.get(item, item)
