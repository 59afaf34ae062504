"""Each alert rule is one registry entry: kind, severity, caveat, thresholds, query."""

from __future__ import annotations

from django.conf import settings

from notifications import rules
from notifications.models import AlertKind
from stratification.definitions import ALERT_THRESHOLD_NAMES


def test_every_alert_kind_has_exactly_one_rule():
    assert sorted(r.kind for r in rules.RULES) == sorted(AlertKind.values)
    assert rules.BY_KIND.keys() == set(AlertKind.values)


def test_every_threshold_is_read_by_a_rule_and_has_a_settings_default():
    used = [name for rule in rules.RULES for name in rule.thresholds]
    assert sorted(used) == sorted(ALERT_THRESHOLD_NAMES)
    assert set(used) == set(settings.REZCOURSE_ALERT_DEFAULTS)


def test_every_rule_states_its_condition_and_caveat():
    for rule in rules.RULES:
        assert rule.condition and rule.caveat and rule.severity


def test_every_caveat_fits_the_alerts_column():
    from notifications.models import Alert

    limit = Alert._meta.get_field("caveat").max_length
    assert all(len(rule.caveat) <= limit for rule in rules.RULES)
