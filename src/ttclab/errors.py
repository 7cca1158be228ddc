"""User-facing errors: one line that names the field / file / line and the fix.

Library code raises these; the CLI prints ``ttclab: error: <message>`` and exits with
``exit_code`` (2 for bad input), never with a traceback. Anything else is a bug.
"""

from __future__ import annotations


class TTCLabError(Exception):
    """Base class for errors caused by the user's input or environment."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        # Keep it to one line: the CLI prints it as is.
        super().__init__(" ".join(str(message).split()))


class ConfigError(TTCLabError):
    """A configuration value is missing or invalid."""


class DataError(TTCLabError):
    """A dataset, run or table file is missing or malformed."""


class BackendError(TTCLabError):
    """A backend cannot be created (missing extra, unknown model, unreachable server)."""


class StoreError(TTCLabError):
    """A run in the store is missing, incompatible or corrupt."""


def missing_extra(package: str, extra: str) -> BackendError:
    """The error for an optional dependency that is not installed."""
    return BackendError(f"{package} is not installed; install it with: pip install 'ttclab[{extra}]'")
