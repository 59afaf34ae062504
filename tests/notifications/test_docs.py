from pathlib import Path

from notifications.rules_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"


def test_the_alert_rules_document_is_current():
    assert DOC.exists(), "docs/alerts.md is missing: run `make docs`"
    assert DOC.read_text() == render(), "docs/alerts.md is stale: run `make docs`"


def test_every_rule_names_its_caveat_and_threshold_source():
    text = render()
    for kind in (
        "hsct_referral_missing",
        "hsct_delayed",
        "mrd_missing_before_hsct",
        "step_overdue",
        "course_stalled",
    ):
        assert f"`{kind}`" in text
    assert "local default" in text and "Delayed HSCT can result in poor outcomes" in text
