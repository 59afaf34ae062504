"""The outcomes page: the API's EFS report as a plot and a table, method stated."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_page_states_the_method_and_gives_the_numbers_by_group(
    web, parse, team, clinician, make_course
):
    make_course(team, clinician)
    response = web(clinician).get("/outcomes/")
    assert response.status_code == 200
    page = parse(response)
    text = page.text
    assert "Kaplan-Meier (lifelines KaplanMeierFitter)" in text and "Greenwood" in text
    assert "Time origin" in text and "Censoring" in text
    numbers = text.split("Event-free survival by risk group")[1]
    assert "Group A 1 0 1" in numbers  # one course, no event, censored
    assert "Tallen et al." in text  # the reference figures, with their source
    assert "/outcomes/efs.png?protocol=all-rez-bfm-90" in response.content.decode()


def test_the_plot_is_a_png_of_the_same_report(web, team, clinician, make_course):
    make_course(team, clinician, protocol="all-rez-bfm-2002")
    response = web(clinician).get("/outcomes/efs.png", {"protocol": "all-rez-bfm-2002"})
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")


def test_filtering_by_protocol_and_team(web, parse, team, other_team, member, make_course):
    user = member(team)
    other_team.memberships.create(user=user, role="viewer")
    make_course(team, user, protocol="all-rez-bfm-2002")
    client = web(user)
    text = parse(client.get("/outcomes/", {"protocol": "all-rez-bfm-2002", "team": team.pk})).text
    assert "all-rez-bfm-2002 · one team · 1 course counted" in text
    text = parse(client.get("/outcomes/", {"team": other_team.pk})).text
    assert "0 courses counted" in text
