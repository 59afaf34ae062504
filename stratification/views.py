"""The dry-run stratification endpoint: facts in, proposed decision out, nothing stored."""

from __future__ import annotations

import zoneinfo
from datetime import date

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from stratification.engine import stratify
from stratification.facts import RelapseFacts
from stratification.serializers import StratifyRequestSerializer, StratifyResponseSerializer

# The documented examples: each request with the response the engine gives for it (a
# test posts every request and compares, so the schema cannot drift from the service).
REQUEST_EXAMPLE = {
    "protocol": "all-rez-bfm-90",
    "initial_diagnosis_date": "2019-03-01",
    "frontline_therapy_end_date": "2021-05-15",
    "relapse_date": "2021-09-20",
    "immunophenotype": "B",
    "site": "combined",
    "em_sites": ["cns"],
    "bm_blast_percent": 42.0,
    "mrd_end_of_induction": None,
    "relapse_number": 1,
    "prior_hsct": False,
    "bcr_abl1": "negative",
    "age_at_diagnosis_months": 52,
}
RESPONSE_EXAMPLE = {
    "protocol": "all-rez-bfm-90",
    "protocol_version": "1.1",
    "time_point": "early",
    "cut_offs": {
        "very_early_before": "2020-09-01",
        "late_from": "2021-11-15",
        "late_if_frontline_ended_on_or_before": None,
        "on_therapy_implausible_after": "2022-03-01",
    },
    "site": "combined",
    "risk_group": "A",
    "status": "assigned",
    "hsct_indicated": True,
    "warnings": [],
    "reasons": [
        {
            "rule": "time_point.early",
            "text": "Early: relapse on 2021-09-20 is on or after initial diagnosis + 18 "
            "calendar months (2020-09-01) and before the end of front-line therapy "
            "+ 6 calendar months (2021-11-15).",
            "source": "World J Hematol 2014 review, Table 2; Bührer 1993; Sauerbrey 1993",
            "confidence": "stated",
        },
        {
            "rule": "a_early_combined",
            "text": "A: early combined relapse (marrow and extramedullary).",
            "source": "Tallen et al., J Clin Oncol 2010;28:2339",
            "confidence": "inferred",
        },
        {
            "rule": "hsct_a",
            "text": "A: allogeneic HSCT indicated once in CR2, if a donor is available.",
            "source": "Seed article: Treatment of Relapsed ALL Using the ALL-REZ BFM90 "
            "Protocol (Dr.Oracle, 2025)",
            "confidence": "recalled",
        },
    ],
}
UNKNOWN_STATUS_REQUEST = {
    "protocol": "all-rez-bfm-90",
    "initial_diagnosis_date": "2016-04-12",
    "relapse_date": "2023-02-01",
    "immunophenotype": "B",
    "site": "isolated_bm",
    "bm_blast_percent": 70.0,
    "relapse_number": 1,
    "prior_hsct": False,
    "bcr_abl1": "negative",
    "age_at_diagnosis_months": 61,
}
UNKNOWN_STATUS_RESPONSE = {
    "protocol": "all-rez-bfm-90",
    "protocol_version": "1.1",
    "time_point": None,
    "cut_offs": {
        "very_early_before": "2017-10-12",
        "late_from": None,
        "late_if_frontline_ended_on_or_before": "2022-08-01",
        "on_therapy_implausible_after": "2019-04-12",
    },
    "site": "isolated_bm",
    "risk_group": None,
    "status": "needs_review",
    "hsct_indicated": None,
    "warnings": [],
    "reasons": [
        {
            "rule": "time_point.frontline_status_unknown",
            "text": "Time point not determined: relapse on 2023-02-01 is on or after "
            "initial diagnosis + 18 calendar months (2017-10-12), and the "
            "front-line status is unknown (neither completed with an end date nor "
            "on_therapy): late → group B (b_late_isolated_marrow), HSCT not "
            "indicated, if front-line therapy ended on or before 2022-08-01; early "
            "→ group A (a_early_isolated_marrow), HSCT indicated, if it ended later "
            "or the relapse happened during front-line therapy. Give "
            "frontline_status (with frontline_therapy_end_date if completed) to "
            "decide.",
            "source": "World J Hematol 2014 review, Table 2; Bührer 1993; Sauerbrey 1993",
            "confidence": "stated",
        }
    ],
}
SECOND_RELAPSE_REQUEST = {
    "protocol": "all-rez-bfm-2002",
    "initial_diagnosis_date": "2015-06-02",
    "frontline_status": "completed",
    "frontline_therapy_end_date": "2017-08-30",
    "relapse_date": "2022-01-17",
    "immunophenotype": "B",
    "site": "isolated_bm",
    "bm_blast_percent": 85.0,
    "relapse_number": 2,
    "prior_hsct": False,
    "bcr_abl1": "negative",
    "age_at_diagnosis_months": 38,
}
SECOND_RELAPSE_RESPONSE = {
    "protocol": "all-rez-bfm-2002",
    "protocol_version": "1.1",
    "time_point": "late",
    "cut_offs": {
        "very_early_before": "2016-12-02",
        "late_from": "2018-02-28",
        "late_if_frontline_ended_on_or_before": None,
        "on_therapy_implausible_after": "2018-06-02",
    },
    "site": "isolated_bm",
    "risk_group": None,
    "status": "needs_review",
    "hsct_indicated": None,
    "warnings": [],
    "reasons": [
        {
            "rule": "time_point.late",
            "text": "Late: relapse on 2022-01-17 is on or after the end of front-line "
            "therapy + 6 calendar months (2018-02-28).",
            "source": "World J Hematol 2014 review, Table 2; Bührer 1993; Sauerbrey 1993",
            "confidence": "stated",
        },
        {
            "rule": "excluded_second_relapse",
            "text": "Outside the protocol: a second or later relapse. ALL-REZ BFM 2002 is a "
            "first-relapse protocol; a later relapse calls for HSCT or experimental "
            "therapy. Given: relapse_number = 2.",
            "source": "Reismüller et al., J Pediatr Hematol Oncol 2013; Brown et al., JAMA "
            "2021 (COG AALL1331), eligibility; Locatelli et al., JAMA 2021 "
            "(high-risk first relapse), eligibility",
            "confidence": "inferred",
        },
    ],
}
CONFIRMED_IMPLAUSIBLE_REQUEST = {
    "protocol": "all-rez-bfm-2002",
    "initial_diagnosis_date": "2018-01-15",
    "frontline_status": "on_therapy",
    "relapse_date": "2021-06-01",
    "immunophenotype": "B",
    "site": "isolated_bm",
    "bm_blast_percent": 64.0,
    "relapse_number": 1,
    "prior_hsct": False,
    "bcr_abl1": "unknown",
    "age_at_diagnosis_months": 75,
    "confirm_implausible": True,
    "implausible_reason": "Maintenance prolonged after a 9-month interruption for toxicity.",
}
CONFIRMED_IMPLAUSIBLE_RESPONSE = {
    "protocol": "all-rez-bfm-2002",
    "protocol_version": "1.1",
    "time_point": "early",
    "cut_offs": {
        "very_early_before": "2019-07-15",
        "late_from": None,
        "late_if_frontline_ended_on_or_before": None,
        "on_therapy_implausible_after": "2021-01-15",
    },
    "site": "isolated_bm",
    "risk_group": "S3",
    "status": "assigned",
    "hsct_indicated": True,
    "warnings": [
        {
            "rule": "frontline_status.on_therapy_implausible_confirmed",
            "text": "Front-line status on_therapy at a relapse on 2021-06-01, more than 36 "
            "months after diagnosis (after 2021-01-15). Front-line therapy in BFM "
            'protocols lasts about 2 years, so a relapse "during front-line '
            'therapy" long after diagnosis is implausible. Confirmed by the '
            "clinician: Maintenance prolonged after a 9-month interruption for "
            "toxicity.",
            "source": "rezcourse clinical notes (project decision)",
            "confidence": "recalled",
        },
        {
            "rule": "bcr_abl1_unknown",
            "text": "BCR::ABL1 status not given: stratified as BCR::ABL1-negative. If it "
            "is positive (Ph+), this protocol does not apply (TKI-based therapy).",
            "source": "rezcourse clinical notes (project decision)",
            "confidence": "inferred",
        },
    ],
    "reasons": [
        {
            "rule": "time_point.early",
            "text": "Early: relapse on 2021-06-01 is on or after initial diagnosis + 18 "
            "calendar months (2019-07-15) and during front-line therapy, which is "
            "never late.",
            "source": "World J Hematol 2014 review, Table 2; Bührer 1993; Sauerbrey 1993",
            "confidence": "stated",
        },
        {
            "rule": "s3_early_isolated_marrow",
            "text": "S3: early isolated marrow relapse of BCP ALL.",
            "source": "Hunger & Raetz review of relapsed childhood ALL, table of the BFM "
            "strata S1-S4",
            "confidence": "recalled",
        },
        {
            "rule": "hsct_s3",
            "text": "S3: HSCT indicated.",
            "source": "Eckert et al., J Clin Oncol 2013 (ALL-REZ BFM 2002, MRD after induction)",
            "confidence": "stated",
        },
    ],
}

EXAMPLES = [
    (
        "Early combined relapse, ALL-REZ BFM 90",
        REQUEST_EXAMPLE,
        "Group A proposed",
        RESPONSE_EXAMPLE,
    ),
    (
        "Front-line status not given, ALL-REZ BFM 90",
        UNKNOWN_STATUS_REQUEST,
        "Needs review: the time point depends on the front-line end date",
        UNKNOWN_STATUS_RESPONSE,
    ),
    (
        "Second relapse, ALL-REZ BFM 2002",
        SECOND_RELAPSE_REQUEST,
        "Needs review: outside the population (second relapse)",
        SECOND_RELAPSE_RESPONSE,
    ),
    (
        "On therapy long after diagnosis, confirmed, ALL-REZ BFM 2002",
        CONFIRMED_IMPLAUSIBLE_REQUEST,
        "S3 proposed, with warnings",
        CONFIRMED_IMPLAUSIBLE_RESPONSE,
    ),
]


class StratifyView(APIView):
    # Any signed-in user: the dry run writes nothing and reads no team's data, so the
    # team-role write permission does not apply.
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="stratify_dry_run",
        summary="Stratify a relapse (dry run; nothing is stored)",
        description=(
            "Runs the stratification engine on the given facts with the named protocol "
            "definition and answers the proposed time point with its cut-off dates, risk "
            "group, HSCT indication, warnings, and the rules that decided — each with its "
            "source and confidence (stated / recalled / inferred). A proposal only: a "
            "clinician confirms it when a course is opened. A case outside the protocol's "
            "population (second relapse, prior HSCT, BCR::ABL1-positive, infant, MPAL), a "
            "relapse number or prior HSCT given as unknown, a front-line status that is "
            "unknown where it decides the time point, an isolated marrow relapse with M2 "
            "marrow (5 to < 25 % blasts), an isolated EM relapse without a marrow blast "
            "count, or a case the sources read differently is `needs_review` with no group, "
            "the reasons saying why. The relapse number and prior HSCT must be given (a "
            "value or unknown): there are no records here to take them from. A bad request "
            "answers 400 naming every bad field at once."
        ),
        request=StratifyRequestSerializer,
        responses={
            200: StratifyResponseSerializer,
            400: OpenApiResponse(description="Invalid facts; error.fields names each field."),
            401: OpenApiResponse(description="Not signed in."),
        },
        examples=[
            example
            for name, request, outcome, response in EXAMPLES
            for example in (
                OpenApiExample(name, value=request, request_only=True),
                OpenApiExample(outcome, value=response, response_only=True),
            )
        ],
        tags=["stratification"],
    )
    def post(self, request: Request) -> Response:
        today = _latest_today(request)
        serializer = StratifyRequestSerializer(data=request.data, context={"today": today})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        decision = stratify(RelapseFacts.from_mapping(data), data["protocol_definition"])
        return Response(decision.as_dict())


def _latest_today(request: Request) -> date:
    """ "Today" for the future-date checks, read once: the latest date it is in any of
    the requester's teams' time zones (a date that has begun for one of their teams is
    not in the future), or the server's date for a user in no team.

    Read through the user's memberships rather than the teams app, which this app does
    not import (pyproject's import contracts)."""
    now = timezone.now()
    zones = set(request.user.memberships.values_list("team__time_zone", flat=True))
    if not zones:
        return timezone.localdate(now)
    return max(now.astimezone(zoneinfo.ZoneInfo(zone)).date() for zone in zones)
