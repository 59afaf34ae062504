"""Event-free survival, the pure part: the Kaplan-Meier estimator against a textbook
example, and the event/censoring rules for one course."""

from __future__ import annotations

from datetime import date

import pytest

from reports.survival import efs_observation, kaplan_meier

# Freireich et al. 1963, 6-MP arm (weeks of remission; * = censored): the classic
# worked example (e.g. Kleinbaum & Klein, Survival Analysis; Collett).
SIX_MP_TEXT = "6 6 6 6* 7 9* 10 10* 11* 13 16 17* 19* 20* 22 23 25* 32* 32* 34* 35*"
SIX_MP = SIX_MP_TEXT.split()
DURATIONS = [int(x.rstrip("*")) for x in SIX_MP]
EVENTS = [not x.endswith("*") for x in SIX_MP]
# time: (S(t), Greenwood SE, at risk) — textbook values to 3 decimals.
TEXTBOOK = {
    6: (0.857, 0.076, 21),
    7: (0.807, 0.087, 17),
    10: (0.753, 0.096, 15),
    13: (0.690, 0.107, 12),
    16: (0.627, 0.114, 11),
    22: (0.538, 0.128, 7),
    23: (0.448, 0.135, 6),
}


def test_kaplan_meier_matches_the_textbook_6mp_arm():
    km = kaplan_meier(DURATIONS, EVENTS)
    assert (km.n, km.events) == (21, 9)
    points = {p.time: p for p in km.points}
    for time, (survival, se, at_risk) in TEXTBOOK.items():
        point = points[time]
        assert round(point.survival, 3) == survival, time
        assert round(point.se, 3) == se, time
        assert point.at_risk == at_risk, time
    # Censored times carry the estimate forward, with their own at-risk counts.
    assert points[9].survival == pytest.approx(points[7].survival)
    assert (points[9].events, points[9].censored) == (0, 1)
    assert points[0].survival == 1.0 and points[0].se == 0.0
    # Median: the first time S(t) <= 0.5.
    assert km.median == 23
    # 95 % limits on the log(-log) scale (as R's survfit conf.type="log-log").
    assert points[6].ci_lower == pytest.approx(0.620, abs=5e-4)
    assert points[6].ci_upper == pytest.approx(0.952, abs=5e-4)


def test_the_estimate_at_a_time_is_the_step_in_force_and_undefined_past_follow_up():
    km = kaplan_meier(DURATIONS, EVENTS)
    assert km.at(12).survival == pytest.approx(0.753, abs=5e-4)
    assert km.at(35).survival == pytest.approx(0.448, abs=5e-4)
    assert km.at(36) is None
    assert km.at_risk(10) == 15
    assert km.at_risk(36) == 0


def test_se_is_undefined_once_everyone_had_the_event():
    km = kaplan_meier([2, 4, 4], [True, True, True])
    assert [p.survival for p in km.points] == [1.0, pytest.approx(2 / 3), 0.0]
    assert km.points[-1].se is None
    assert km.median == 4


def test_no_observations_give_an_empty_estimate():
    km = kaplan_meier([], [])
    assert (km.n, km.events, km.median, km.points) == (0, 0, None, ())
    assert km.at(1) is None


def _obs(**kwargs):
    base = {
        "start": date(2025, 1, 1),
        "event_dates": [],
        "censor_dates": [],
        "seen_dates": [],
        "today": date(2026, 1, 1),
    }
    return efs_observation(**{**base, **kwargs})


def test_the_first_event_counts():
    assert _obs(event_dates=[date(2025, 3, 2), date(2025, 1, 11), None]) == (10, True)


def test_withdrawal_before_an_event_censors_at_its_date_and_the_event_wins_a_tie():
    assert _obs(event_dates=[date(2025, 3, 2)], censor_dates=[date(2025, 1, 31)]) == (30, False)
    assert _obs(event_dates=[date(2025, 1, 31)], censor_dates=[date(2025, 1, 31)]) == (30, True)


def test_without_events_the_course_is_censored_at_its_last_follow_up_capped_at_today():
    seen = [date(2025, 2, 1), None, date(2025, 1, 5)]
    assert _obs(seen_dates=seen) == (31, False)
    assert _obs(seen_dates=[date(2027, 1, 1)]) == (365, False)
    assert _obs(seen_dates=[]) == (0, False)
    # A record dated before the start counts as day 0, never negative.
    assert _obs(event_dates=[date(2024, 12, 30)]) == (0, True)
