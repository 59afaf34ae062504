"""The dry-run stratification endpoint: facts in, proposed decision out, nothing stored."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from stratification.engine import stratify
from stratification.facts import RelapseFacts
from stratification.serializers import StratifyRequestSerializer, StratifyResponseSerializer

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
}
RESPONSE_EXAMPLE = {
    "protocol": "all-rez-bfm-90",
    "protocol_version": "1.0",
    "time_point": "early",
    "site": "combined",
    "risk_group": "A",
    "status": "assigned",
    "hsct_indicated": True,
    "reasons": [
        {
            "rule": "time_point.early",
            "text": "Early: relapse on 2021-09-20 is on or after initial diagnosis + 18 "
            "calendar months (2020-09-01) and before the end of front-line therapy + 6 "
            "calendar months (2021-11-15).",
            "source": "World J Hematol 2014 review, Table 2; Bührer 1993; Sauerbrey 1993",
        },
        {
            "rule": "a_early_marrow",
            "text": "A: early relapse involving the marrow (isolated marrow or combined).",
            "source": "Tallen et al., J Clin Oncol 2010;28:2339",
        },
        {
            "rule": "hsct_a",
            "text": "A: allogeneic HSCT indicated once in CR2, if a donor is available.",
            "source": "Tallen et al., J Clin Oncol 2010;28:2339; Seed article: Treatment of "
            "Relapsed ALL Using the ALL-REZ BFM90 Protocol (Dr.Oracle, 2025)",
        },
    ],
}


class StratifyView(APIView):
    # Any signed-in user: the dry run writes nothing and reads no team's data, so the
    # team-role write permission does not apply.
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="stratify_dry_run",
        summary="Stratify a relapse (dry run; nothing is stored)",
        description=(
            "Runs the stratification engine on the given facts with the named protocol "
            "definition and answers the proposed time point, risk group, HSCT indication "
            "and the rules that decided, with their sources. A proposal only: a clinician "
            "confirms it when a course is opened. A bad request answers 400 naming every "
            "bad field at once."
        ),
        request=StratifyRequestSerializer,
        responses={
            200: StratifyResponseSerializer,
            400: OpenApiResponse(description="Invalid facts; error.fields names each field."),
            401: OpenApiResponse(description="Not signed in."),
        },
        examples=[
            OpenApiExample(
                "Early combined relapse, ALL-REZ BFM 90", value=REQUEST_EXAMPLE, request_only=True
            ),
            OpenApiExample("Group A proposed", value=RESPONSE_EXAMPLE, response_only=True),
        ],
        tags=["stratification"],
    )
    def post(self, request: Request) -> Response:
        # "Today" for the future-date checks: read once, in the server's time zone.
        today = timezone.localdate()
        serializer = StratifyRequestSerializer(data=request.data, context={"today": today})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        decision = stratify(RelapseFacts.from_mapping(data), data["protocol_definition"])
        return Response(decision.as_dict())
