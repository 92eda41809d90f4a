"""User-facing errors: the CLI prints their message as its last line and exits non-zero, without a traceback."""


class LinlightError(Exception):
    """An error the user can act on (a bad setting, file or checkpoint)."""

    exit_code = 1
    prefix = "error: "


class ConfigError(LinlightError, ValueError):
    """An impossible setting, caught before any work starts."""


class UsageError(ConfigError):
    """A command line that names nothing there is (a config file): exit 2, as the parser's own errors."""

    exit_code = 2


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


class RunFault(LinlightError):
    """A fault a run meets while training (a full disk, a lost DDP peer, a second writer).

    ``hint`` says what is safe and how to continue; it is filled in by whoever knows the run's checkpoints
    (``RunCheckpoint.on_exception``) when the code that failed does not.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class WriteFailed(RunFault):
    """A checkpoint, event or record file could not be written (no space, quota, read-only, I/O error)."""

    def __init__(self, action: str, path: object, error: OSError, hint: str | None = None) -> None:
        self.path, self.errno = path, error.errno
        super().__init__(f"cannot {action} {path}: {error.strerror or error}", hint)


class RunLocked(RunFault):
    """Another process is training this run: a second writer would interleave its checkpoints and curves."""
