"""Reads: the loaded protocol definitions and the persisted decisions."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet

from stratification.definitions import (
    BUILTIN_DIR,
    ProtocolDefinition,
    ProtocolRegistry,
    cached_registry,
)
from stratification.models import StratificationDecision


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


def decision_list(
    *, protocol_slug: str | None = None, unconfirmed_only: bool = False
) -> QuerySet[StratificationDecision]:
    decisions = StratificationDecision.objects.select_related("confirmed_by")
    if protocol_slug is not None:
        decisions = decisions.filter(protocol_slug=protocol_slug)
    if unconfirmed_only:
        decisions = decisions.filter(confirmed_at__isnull=True)
    return decisions
