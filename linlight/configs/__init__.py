"""The configs that ship inside the package, named from any folder: ``--config model0`` (or ``model0.yaml``).

    linlight fit --config model0                # linlight/configs/model0.yaml, wherever linlight is installed
    linlight sweep --space sweep --trials 8     # linlight/configs/sweep.yaml

A value that names an existing file is that file (a ``model0.yaml`` of your own in the current folder comes
first); a bare name that is neither a file nor a shipped config is an error that lists the shipped ones. Paths
(``linlight/configs/model0.yaml`` from a clone's root) and inline YAML or JSON are left as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from linlight.errors import UsageError

FOLDER = Path(__file__).resolve().parent
NAME = re.compile(r"[\w.-]+")  # a bare file name: no folder, no YAML or JSON syntax
CONFIG_FLAGS = ("--config", "-c")


def shipped() -> list[str]:
    """The names of the shipped configs (``exercise``, ``model0``, ...)."""
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def resolve(value: str, what: str = "config") -> str:
    """``value`` itself if it is a file or not a bare name, else the path of the shipped config it names."""
    if not NAME.fullmatch(value) or Path(value).exists():
        return value
    path = FOLDER / (value if value.endswith((".yaml", ".yml")) else f"{value}.yaml")
    if not path.is_file():
        raise UsageError(f"{what} {value}: no such file here ({Path.cwd()}), and linlight ships no config of that "
                          f"name (shipped: {', '.join(shipped())}; a file elsewhere: give its path)")
    return str(path)


def resolve_args(argv: Sequence[str]) -> list[str]:
    """A command line with each ``--config NAME`` (``--config=NAME``, ``-c NAME``) of a shipped config made its path."""
    out, names_next = [], False
    for arg in argv:
        if names_next:
            arg, names_next = resolve(arg), False
        elif arg in CONFIG_FLAGS:
            names_next = True
        elif arg.startswith("--config="):
            arg = f"--config={resolve(arg.removeprefix('--config='))}"
        out.append(arg)
    return out
