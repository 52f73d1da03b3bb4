"""The ``wslbench`` error hierarchy.

Every error raised on bad user input derives from :class:`WslbenchError`, so a
caller (the CLI, a dashboard) can catch one type and show a clear message.
Messages say what was wrong *and* what was expected.
"""

from __future__ import annotations

__all__ = [
    "WslbenchError",
    "InvalidInputError",
    "ConfigError",
    "DataNotFoundError",
    "DataFormatError",
    "RunError",
    "UnsafeFileError",
]


class WslbenchError(Exception):
    """Base class of every error wslbench raises on purpose."""


class InvalidInputError(WslbenchError, ValueError):
    """An argument has the wrong shape, dtype, range or value (NaN, empty mask...)."""


class ConfigError(WslbenchError, ValueError):
    """A configuration is invalid: unknown name, wrong type, unknown preset or grid key."""


class DataNotFoundError(WslbenchError, FileNotFoundError):
    """A data folder or file the user pointed to does not exist or is empty."""


class DataFormatError(WslbenchError, ValueError):
    """A file exists but cannot be read as the expected format (corrupt, wrong layout)."""


class RunError(WslbenchError, RuntimeError):
    """A run folder could not be created or a run failed."""


class UnsafeFileError(WslbenchError):
    """A file would need unsafe deserialisation (pickle) to be read; it is refused."""
