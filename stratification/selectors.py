"""Reads: the loaded protocol definitions and the persisted decisions."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from stratification.definitions import (
    BUILTIN_DIR,
    ProtocolDefinition,
    ProtocolRegistry,
    cached_registry,
)


def protocol_dirs() -> tuple[str, ...]:
    """The built-in definitions, then settings.REZCOURSE_PROTOCOL_DIRS (relative paths
    count from the project directory, not from wherever the process was started)."""
    extra = []
    for directory in getattr(settings, "REZCOURSE_PROTOCOL_DIRS", []):
        path = Path(directory)
        if not path.is_absolute():
            path = Path(settings.BASE_DIR) / path
        extra.append(str(path))
    return (str(BUILTIN_DIR), *extra)


def protocol_registry() -> ProtocolRegistry:
    """All loaded definitions; loaded and validated once per process (per setting)."""
    return cached_registry(protocol_dirs())


def protocol_get(slug: str) -> ProtocolDefinition | None:
    registry = protocol_registry()
    return registry.get(slug) if slug in registry else None


def protocol_list() -> list[ProtocolDefinition]:
    return sorted(protocol_registry(), key=lambda d: d.slug)
