"""User-facing errors: the CLI prints their message as its last line and exits non-zero, without a traceback."""


class LinlightError(Exception):
    """An error the user can act on (a bad setting, file or checkpoint)."""


class ConfigError(LinlightError, ValueError):
    """An impossible setting, caught before any work starts."""


class CheckpointError(LinlightError):
    """A checkpoint that is missing, unreadable, unsafe or not linlight's."""


class DivergedError(LinlightError):
    """Training produced a non-finite loss."""
