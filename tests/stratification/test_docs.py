"""docs/protocols.md is generated from the definition files and must be current."""

from __future__ import annotations

from stratification.definitions import BUILTIN_DIR, builtin_registry
from stratification.docs import render

DOCS = BUILTIN_DIR.parent.parent / "docs" / "protocols.md"


def test_protocol_docs_are_current() -> None:
    current = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    assert current == render(builtin_registry()), (
        "docs/protocols.md is stale or missing: run make docs"
    )


def test_protocol_docs_cover_every_rule_group_and_template() -> None:
    text = render(builtin_registry())
    for definition in builtin_registry():
        assert f"## {definition.title} (`{definition.slug}`, version {definition.version})" in text
        for rule in definition.rules:
            assert f"`{rule.id}`" in text
        for template in definition.schedule_templates:
            assert f"`{template.id}`" in text
        for name in definition.alert_thresholds:
            assert f"`{name}`" in text
