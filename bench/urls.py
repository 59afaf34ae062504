"""The service's URLs plus two baselines per dashboard endpoint for the load test:

* the *limit* views return the same page (the worklist's first page, the summary's
  counters) straight from the precomputed tables with ``.values()`` — no serializers,
  pagination class or permission layer: what the endpoints cost beyond their SQL is
  the difference;
* the *old* views run the design before the precomputed state (bench/legacy.py), so
  the gain stays measured in the same run.

All with the same token authentication as the API."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Sum
from django.http import JsonResponse
from django.urls import include, path
from django.utils import timezone

from bench import legacy
from notifications.models import EVERY_START, UNRESOLVED, Alert, CourseAttention, SummaryCounter
from reports import worklist
from teams.selectors import on_team_date, team_dates, team_ids_for

PAGE = settings.REST_FRAMEWORK["PAGE_SIZE"]


def worklist_limit(request):  # noqa: ANN001, ANN201
    """The endpoint's first page, from the attention rows and the page's alerts."""
    dates = team_dates(request.user, timezone.now())
    rows = CourseAttention.objects.filter(team_id__in=list(dates), priority__isnull=False)
    count = rows.count() if len(dates) == 1 else None
    fields = (*worklist.COURSE_FIELDS, *worklist.COUNTS)
    page = list(rows.order_by(*worklist.order(False)).values(*fields)[:PAGE])
    today = on_team_date(dates, "course__patient__team_id")
    alerts = list(
        Alert.objects.filter(state__in=UNRESOLVED, course_id__in=[r["course_id"] for r in page])
        .exclude(snoozed_until__gt=today)
        .order_by("condition_since", "id")
        .values(*worklist.ALERT_FIELDS)
    )
    return JsonResponse(
        {"count": count, "results": page, "alerts": alerts}, json_dumps_params={"default": str}
    )


def summary_limit(request):  # noqa: ANN001, ANN201
    teams = team_ids_for(request.user) if request.user.is_authenticated else []
    rows = list(
        SummaryCounter.objects.filter(team_id__in=teams, start_date=EVERY_START)
        .values("name", "key", "value")
        .annotate(n=Sum("n"))
        .order_by()
    )
    return JsonResponse({"counters": rows})


def worklist_old(request):  # noqa: ANN001, ANN201
    dates = team_dates(request.user, timezone.now())
    return JsonResponse(legacy.worklist_page(dates, PAGE), json_dumps_params={"default": str})


def summary_old(request):  # noqa: ANN001, ANN201
    teams = team_ids_for(request.user) if request.user.is_authenticated else []
    return JsonResponse(legacy.summary(teams), json_dumps_params={"default": str})


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
    path("bench/worklist-limit/", TokenUser(worklist_limit)),
    path("bench/summary-limit/", TokenUser(summary_limit)),
    path("bench/worklist-old/", TokenUser(worklist_old)),
    path("bench/summary-old/", TokenUser(summary_old)),
    path("", include("config.urls")),
]
