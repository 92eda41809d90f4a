"""The ``linlight`` command's entry point (also ``python -m linlight``): see ``linlight/cli.py``.

It imports the CLI inside a guard, so Ctrl-C during the seconds that importing torch and Lightning takes
ends with one line instead of a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from linlight.cli import main as cli_main
    except KeyboardInterrupt:
        print("linlight: interrupted (Ctrl-C) while starting; nothing was trained", file=sys.stderr)
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
