"""A run's settings beyond plain values: the parts given by class path, where their code comes from, file paths,
and what a checkpoint's saved settings allow.

What is imported from where (the README's "Make it yours" says the same):

- Classes are imported only by their ``class_path`` in the settings you give: the command line, the ``--config``
  files, and, for a checkpoint inside a run folder, that run's saved config (``config.yaml``, written from the
  command that trained it; a run folder is a config, so one from elsewhere is code you choose to run).
- ``import_path`` (a list of folders; in a config file, relative to its folder) is put at the end of Python's
  import path before anything is parsed, so a class of your own (``my_models.MLP``) is found from any folder.
  It is recorded, absolute, in the run's config, so the commands linlight prints run anywhere.
- A checkpoint never names code: its saved settings are compared with yours, and a class path in them is used
  only if it names a class already imported (torch's, linlight's, or one your settings imported). Lightning's
  ``LightningModule.load_from_checkpoint`` would build the classes a file names (GHSA-qqmf-gpg7-g8gw);
  linlight's checkpoints carry no ``_instantiator``, and linlight never calls it.

On a resume the saved state decides what may change: not the model, not the optimizer (its class or its
settings), not the scheduler; ``model.lr`` may (without a scheduler), as may the loss and the trainer's settings.
Every refusal is one line, before anything is written.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import Namespace
from jsonargparse.typing import Path as ArgPath
from jsonargparse.typing import path_type

from linlight.errors import CheckpointError

# ``import_path``'s folders: on the command line relative to the current folder, in a config file to its folder
Folder = path_type("d", docstring="a folder; in a config file, relative to the config file's folder")
LINKED = {"in_features"}  # model settings the CLI links from the data (``data.num_features``)
PARTS = ("model", "loss", "optimizer", "scheduler")  # the module's settings given by class path


def use_import_paths(paths: Any) -> None:
    """Put folders at the end of Python's import path (installed packages keep their names)."""
    for folder in paths or []:
        folder = os.fspath(folder)
        if folder not in sys.path:
            sys.path.append(folder)


def add_import_paths(argv: list[str]) -> None:
    """Before parsing: the ``import_path`` of every ``--config`` file (relative to the file's folder) and of the
    command line (relative to the current folder), so that the class paths they hold can be imported."""
    for flag, value in itertools.pairwise(argv):
        if flag in ("--config", "-c") and Path(value).is_file():
            try:
                loaded = yaml.safe_load(Path(value).read_text())
            except (OSError, yaml.YAMLError):
                continue  # the parser says what is wrong with it
            if isinstance(loaded, dict):
                found = loaded.get("import_path")
                folders = [found] if isinstance(found, str) else found if isinstance(found, list) else []
                use_import_paths((Path(value).resolve().parent / str(f)).resolve() for f in folders)
        elif flag == "--import_path":
            try:
                folders = yaml.safe_load(value)
            except yaml.YAMLError:
                continue
            folders = [folders] if isinstance(folders, str) else folders if isinstance(folders, list) else []
            use_import_paths(Path(str(f)).resolve() for f in folders)


def absolute_paths(config: Namespace) -> None:
    """File settings as absolute paths: read where they were given (a config file's folder), recorded so that
    the run's config means the same files from any folder."""
    for key, value in list(config.items()):
        if isinstance(value, ArgPath):
            config[key] = type(value)(os.path.normpath(value.absolute))
        elif isinstance(value, list) and value and all(isinstance(v, ArgPath) for v in value):
            config[key] = [type(v)(os.path.normpath(v.absolute)) for v in value]


def plain(value: Any) -> Any:
    """Settings as plain data: namespaces as dicts, paths as absolute strings."""
    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (ArgPath, os.PathLike)):
        return os.fspath(value)
    return value


def class_paths(settings: Any) -> list[str]:
    """Every ``class_path`` in nested settings."""
    if isinstance(settings, Mapping):
        own = [settings["class_path"]] if isinstance(settings.get("class_path"), str) else []
        return own + [c for v in settings.values() for c in class_paths(v)]
    if isinstance(settings, (list, tuple)):
        return [c for v in settings for c in class_paths(v)]
    return []


def is_imported(class_path: str) -> bool:
    module, _, name = class_path.rpartition(".")
    return module in sys.modules and hasattr(sys.modules[module], name)


def check_imported(settings: Any, source: str) -> None:
    """Refuse settings from a checkpoint that name a class not imported yet: linlight imports nothing a file names."""
    for class_path in class_paths(settings):
        if not is_imported(class_path):
            raise CheckpointError(
                f"{source} was trained with {class_path}, a class linlight does not import because a checkpoint "
                f"names it: give the settings it was trained with yourself (e.g. --config FILE, with import_path "
                f"for a module of your own)"
            )


def part(value: Any) -> dict[str, Any] | None:
    """A part given by class path, as ``{"class_path", "init_args"}``, its linked settings left out."""
    value = plain(value)
    if not isinstance(value, Mapping) or "class_path" not in value:
        return value
    args = {k: v for k, v in (value.get("init_args") or {}).items() if k not in LINKED}
    return {"class_path": value["class_path"], "init_args": args}


def describe(value: Any) -> str:
    """A part in words: ``my_models.MLP(hidden=16)``, ``torch.optim.SGD``, ``none``."""
    value = part(value)
    if value is None:
        return "none"
    if not isinstance(value, Mapping):
        return repr(value)
    args = ", ".join(f"{k}={v!r}" for k, v in value["init_args"].items())
    return f"{value['class_path']}({args})" if args else value["class_path"]


def which_model(settings: Mapping[str, Any]) -> str:
    """The model the module settings name: ``model.arch='v2'`` or ``model.model=my_models.MLP(hidden=16)``."""
    model = settings.get("model")
    return f"model.model={describe(model)}" if model is not None else f"model.arch={settings.get('arch') or 'v2'!r}"


def check_against_checkpoint(subcommand: str, path: Path, saved: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """Refuse module settings that the checkpoint's saved state cannot take, in one line.

    ``saved``: the checkpoint's ``hyper_parameters``; ``now``: the module's settings for this command.
    """
    recorded = saved.get("arch") is not None or saved.get("model") is not None  # (not by a module built in Python)
    if recorded and which_model(saved) != which_model(now):
        raise CheckpointError(f"{path} holds weights of {which_model(saved)}, "
                              f"not {_short(which_model(now), versus=which_model(saved))}")
    if subcommand != "fit":
        return
    for name in ("optimizer", "scheduler"):
        if name not in saved:  # a checkpoint that did not record it (made outside linlight's CLI)
            continue
        before, after = part(saved.get(name)), part(now.get(name))
        if before == after:
            continue
        if not isinstance(before, Mapping) or not isinstance(after, Mapping) or \
                before["class_path"] != after["class_path"]:
            was, now_ = (p["class_path"] if isinstance(p, Mapping) else "none" for p in (before, after))
            raise CheckpointError(
                f"{path} was trained with {name} {was}: its saved state cannot continue as {now_}; "
                f"resume with the {name} it was trained with (leave model.{name} out), or start a new run")
        changed = [k for k in before["init_args"].keys() | after["init_args"].keys()
                   if before["init_args"].get(k) != after["init_args"].get(k)]
        raise CheckpointError(
            f"{path} was trained with {name} {describe(before)}: its settings are part of the saved state, so "
            f"{', '.join(f'model.{name}.{k}' for k in sorted(changed))} cannot change on a resume (model.lr can); "
            "leave them out, or start a new run")
    if part(now.get("scheduler")) is not None and saved.get("lr") is not None and now.get("lr") != saved.get("lr"):
        raise CheckpointError(
            f"{path} was trained with a scheduler, which sets the learning rate from then on: model.lr cannot "
            f"change on a resume ({saved.get('lr')} -> {now.get('lr')}); leave it out, or start a new run")


def _short(model: str, versus: str = "") -> str:
    """``model.arch='v2'`` against another arch reads ``'v2'``; against another kind of model, in full."""
    kind = model.split("=", 1)[0]
    return model.split("=", 1)[1] if versus and versus.split("=", 1)[0] == kind else model


def check_weights_fit(module: torch.nn.Module, checkpoint: Mapping[str, Any], path: Path, settings: Mapping) -> None:
    """The checkpoint's weights load into the module built from the settings, strictly, or one line says why."""
    state = {k: v for k, v in checkpoint.get("state_dict", {}).items()
             if not k.startswith(("val_metrics.", "test_metrics."))}
    own = module.state_dict()
    missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    shapes = [f"{k} {list(state[k].shape)} (the model's is {list(own[k].shape)})"
              for k in sorted(own.keys() & state.keys())
              if isinstance(state[k], torch.Tensor) and state[k].shape != own[k].shape]
    if not (missing or unexpected or shapes):
        module.load_state_dict(state, strict=True)  # (the Trainer loads the same again)
        return
    why = "; ".join(filter(None, [f"it has no {', '.join(missing[:4])}" if missing else "",
                                  f"it has {', '.join(unexpected[:4])} the model has not" if unexpected else "",
                                  f"shapes differ: {', '.join(shapes[:3])}" if shapes else ""]))
    raise CheckpointError(f"{path} holds weights of another model than {which_model(settings)}: {why}")


def recorded_parts(config: Namespace, num_features: int | None, model: torch.nn.Module) -> dict[str, Any]:
    """The module's parts as the settings that built them, with the linked ``in_features`` the model got."""
    parts = {name: plain(config.get(name)) for name in PARTS}
    built = parts.get("model")
    if isinstance(built, dict) and num_features is not None:
        import inspect

        if "in_features" in inspect.signature(type(model)).parameters:
            built.setdefault("init_args", {})["in_features"] = num_features
    return parts
