"""The ``linlight`` command's entry point (also ``python -m linlight``): ``linlight sweep ...`` goes to
``linlight/sweep/``, everything else to ``linlight/cli.py`` (so neither imports the other).

It imports the command inside a guard, so Ctrl-C during the seconds that importing torch and Lightning takes
ends with one line instead of a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    sweep = argv[:1] == ["sweep"]  # many fits, not a Trainer method: LightningCLI cannot host it (linlight/sweep/)
    try:
        if sweep:
            from linlight.sweep import main as run_sweep
        else:
            from linlight.cli import main as run_cli
    except KeyboardInterrupt:
        print("linlight: interrupted (Ctrl-C) while starting; nothing was trained", file=sys.stderr)
        sys.exit(130)
    if sweep:
        run_sweep(argv[1:])
    else:
        run_cli()


if __name__ == "__main__":
    main()
