from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token

from teams.models import Membership

pytestmark = pytest.mark.django_db


def test_api_token_prints_the_same_token_until_rotated(clinician):
    def run(*args: str) -> str:
        out = StringIO()
        call_command("api_token", clinician.username, *args, stdout=out)
        return out.getvalue().strip()

    first = run()
    assert first == Token.objects.get(user=clinician).key
    assert run() == first
    rotated = run("--rotate")
    assert rotated != first
    assert Token.objects.get(user=clinician).key == rotated


def test_api_token_for_an_unknown_user_is_a_clear_error():
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("api_token", "ghost")


def test_load_demo_is_idempotent_and_prints_credentials():
    out = StringIO()
    call_command("load_demo", courses=0, stdout=out)
    call_command("load_demo", courses=0, stdout=StringIO())
    assert Membership.objects.count() == 4
    text = out.getvalue()
    assert "coord.north" in text and "demo-coord.north" in text
    assert Token.objects.get(user__username="view.north").key in text


def test_load_demo_builds_a_small_swept_cohort_once():
    from courses.models import TreatmentCourse
    from notifications.models import SweepRun

    call_command("load_demo", courses=5, stdout=StringIO())
    call_command("load_demo", courses=5, stdout=StringIO())
    assert TreatmentCourse.objects.filter(patient__team__slug="north").count() == 5
    assert TreatmentCourse.objects.filter(patient__team__slug="south").count() == 5
    assert SweepRun.objects.get(name="alerts").runs == 2
