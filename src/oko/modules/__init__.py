"""Product modules by name."""

from oko.modules import attributes as _attributes  # noqa: F401  (registers the module)
from oko.modules import detect as _detect  # noqa: F401
from oko.modules import faces as _faces  # noqa: F401
from oko.modules import plates as _plates  # noqa: F401
from oko.modules import reid as _reid  # noqa: F401
from oko.modules import road as _road  # noqa: F401
from oko.modules import vehicles as _vehicles  # noqa: F401
from oko.modules.base import Module, ModuleOptions, TrackReporter, create_module

__all__ = ["Module", "ModuleOptions", "TrackReporter", "create_module", "module_names"]


def module_names() -> list[str]:
    return sorted(Module.registry)
