"""User-facing errors: the CLI prints their message as its last line and exits non-zero, without a traceback."""


class LinlightError(Exception):
    """An error the user can act on (a bad setting, file or checkpoint)."""

    exit_code = 1
    prefix = "error: "


class ConfigError(LinlightError, ValueError):
    """An impossible setting, caught before any work starts."""


class CheckpointError(LinlightError):
    """A checkpoint that is missing, unreadable, unsafe or not linlight's."""


class DivergedError(LinlightError):
    """Training produced a non-finite loss."""


class Stopped(LinlightError):
    """A run stopped cleanly by a signal (Ctrl-C, SIGTERM) after saving ``last.ckpt``."""

    prefix = ""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class Interrupted(LinlightError):
    """Ctrl-C that stops at once: while starting, or a second one during training."""

    exit_code = 130
    prefix = ""
