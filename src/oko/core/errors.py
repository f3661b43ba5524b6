"""User-facing errors.

Every error a user can cause (a wrong path, a broken model, a typo in a config) derives
from :class:`OkoError`. The CLI prints ``str(error)`` on one line and exits with status 2;
anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class OkoError(Exception):
    """Base of all user-facing errors: the message names what is wrong and where."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class ConfigError(OkoError):
    """A config file, manifest or option value is invalid."""


class SourceError(OkoError):
    """A video/image source cannot be opened or read."""


class EngineLoadError(OkoError):
    """A model file cannot be loaded by the chosen engine."""


class ModelContractError(OkoError):
    """A model's inputs/outputs do not match what its manifest promises."""


class ModelNotFoundError(OkoError):
    """A model name or path resolves to nothing."""


class UnknownNameError(OkoError):
    """A name (module, engine, family, ...) is not one of the registered ones."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]) -> None:
        choices = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown {kind} {name!r}", f"choose one of: {choices}")
        self.kind = kind
        self.name = name
