"""The service's URLs plus baseline views for the dashboard load test: the same rows
as the worklist and summary endpoints, straight from ``.values()`` with no
serializers, pagination classes or permission layer — what the endpoints cost beyond
their SQL is the difference."""

from __future__ import annotations

from django.db.models import Case, Count, F, IntegerField, Max, Min, Q, Value, When
from django.http import JsonResponse
from django.urls import include, path
from django.utils import timezone

from courses.models import ACTIVE_STATES, TreatmentCourse
from notifications.models import SEVERITY_RANK, UNRESOLVED, Alert
from reports.delays import delay_statistics
from teams.selectors import on_team_date, team_dates, team_ids_for


def _attention(today, prefix=""):
    return Q(**{f"{prefix}state__in": UNRESOLVED}) & ~Q(**{f"{prefix}snoozed_until__gt": today})


def worklist_values(request):  # noqa: ANN001, ANN201
    # Each team's today, as the endpoint judges it (one constant for one time zone).
    dates = team_dates(request.user, timezone.now())
    today = on_team_date(dates, "course__patient__team_id")
    teams = list(dates)
    rank = Case(
        *(When(severity=s, then=Value(r)) for s, r in SEVERITY_RANK.items()),
        output_field=IntegerField(),
    )
    rows = list(
        Alert.objects.filter(
            _attention(today), course__patient__team_id__in=teams, course__state__in=ACTIVE_STATES
        )
        .values("course_id")
        .annotate(
            open_alerts=Count("id"),
            urgency=Max(rank + F("escalation_level")),
            oldest_since=Min("condition_since"),
        )
        .order_by("-urgency", "oldest_since", "course_id")[:50]
    )
    ids = [r["course_id"] for r in rows]
    courses = list(
        TreatmentCourse.objects.filter(pk__in=ids).values(
            "pk", "patient__reference", "state", "risk_group", "protocol_slug"
        )
    )
    alerts = list(
        Alert.objects.filter(_attention(today), course_id__in=ids).values(
            "course_id", "kind", "severity", "condition_since", "message"
        )
    )
    return JsonResponse(
        {"results": rows, "courses": courses, "alerts": alerts}, json_dumps_params={"default": str}
    )


def summary_values(request):
    teams = team_ids_for(request.user) if request.user.is_authenticated else []
    courses = TreatmentCourse.objects.filter(patient__team_id__in=teams)
    active = courses.filter(state__in=ACTIVE_STATES)
    data = {
        "by_state": list(active.values("state").annotate(n=Count("id")).order_by()),
        "by_group": list(active.values("risk_group").annotate(n=Count("id")).order_by()),
        "alerts": list(
            Alert.objects.filter(state__in=UNRESOLVED, course__in=courses.values("pk"))
            .values("kind", "severity")
            .annotate(n=Count("id"))
            .order_by()
        ),
        "delays": delay_statistics(teams).as_dict(),
    }
    return JsonResponse(data, json_dumps_params={"default": str})


class TokenUser:
    """DRF's token authentication for the plain Django views (same cost as the API's)."""

    def __init__(self, view):
        self.view = view

    def __call__(self, request):
        from rest_framework.authentication import TokenAuthentication
        from rest_framework.request import Request

        result = TokenAuthentication().authenticate(Request(request))
        if result:
            request.user = result[0]
        return self.view(request)


urlpatterns = [
    path("bench/worklist-values/", TokenUser(worklist_values)),
    path("bench/summary-values/", TokenUser(summary_values)),
    path("", include("config.urls")),
]
