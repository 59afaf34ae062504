"""Persisted decisions: proposed by the engine, confirmed once, never changed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction

from config.errors import Invalid
from stratification.definitions import builtin_registry
from stratification.engine import stratify
from stratification.facts import RelapseFacts
from stratification.models import (
    DecisionAlreadyConfirmedError,
    DecisionImmutableError,
    StratificationDecision,
)
from stratification.serializers import (
    StratificationDecisionDetailSerializer,
    StratificationDecisionSerializer,
)
from stratification.services import decision_confirm, decision_propose, decision_values
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)
BFM90 = builtin_registry().get("all-rez-bfm-90")

EARLY_COMBINED = RelapseFacts(
    initial_diagnosis_date=date(2017, 1, 10),
    frontline_therapy_end_date=date(2019, 3, 1),
    relapse_date=date(2019, 6, 1),
    immunophenotype="B",
    site="combined",
    em_sites=("testis", "cns"),
    bm_blast_percent=40.0,
    relapse_number=1,
    prior_hsct=False,
)
VERY_EARLY_EM = RelapseFacts(
    initial_diagnosis_date=date(2021, 1, 10),
    frontline_therapy_end_date=None,
    relapse_date=date(2022, 2, 1),
    immunophenotype="B",
    site="isolated_em",
    em_sites=("cns",),
    bm_blast_percent=1.0,
    relapse_number=1,
    prior_hsct=False,
)


@pytest.fixture
def decision() -> StratificationDecision:
    return decision_propose(EARLY_COMBINED, BFM90, NOW)


@pytest.fixture
def doctor() -> object:
    return UserFactory(username="doctor")


def test_propose_stores_what_the_engine_decided(decision: StratificationDecision) -> None:
    stored = StratificationDecision.objects.get(pk=decision.pk)
    assert (stored.protocol_slug, stored.protocol_version) == ("all-rez-bfm-90", "1.1")
    assert (stored.time_point, stored.site, stored.proposed_group) == ("early", "combined", "A")
    assert (stored.status, stored.hsct_indicated) == ("assigned", True)
    assert [r["rule"] for r in stored.reasons] == ["time_point.early", "a_early_combined", "hsct_a"]
    assert [r["confidence"] for r in stored.reasons] == ["stated", "inferred", "recalled"]
    assert stored.cut_offs == {
        "very_early_before": "2018-07-10",
        "late_from": "2019-09-01",
        "late_if_frontline_ended_on_or_before": None,
        "on_therapy_implausible_after": "2020-01-10",
    }
    # EARLY_COMBINED gives neither BCR::ABL1 nor the age at diagnosis.
    assert [w["rule"] for w in stored.warnings] == ["bcr_abl1_unknown", "age_at_diagnosis_unknown"]
    assert all(set(w) == {"rule", "text", "source", "confidence"} for w in stored.warnings)
    assert stored.input_snapshot == EARLY_COMBINED.as_json()
    assert stored.input_snapshot["em_sites"] == ["cns", "testis"]
    assert stored.created_at == NOW
    assert not stored.is_confirmed
    assert RelapseFacts.from_mapping(stored.input_snapshot) == EARLY_COMBINED


def test_propose_stores_needs_review_without_group() -> None:
    stored = decision_propose(VERY_EARLY_EM, BFM90, NOW)
    assert (stored.proposed_group, stored.status, stored.hsct_indicated) == (
        None,
        "needs_review",
        None,
    )


def test_propose_stores_an_undetermined_time_point_as_needs_review() -> None:
    facts = RelapseFacts(
        initial_diagnosis_date=date(2016, 4, 12),
        frontline_therapy_end_date=None,
        relapse_date=date(2023, 2, 1),
        immunophenotype="B",
        site="isolated_bm",
        bm_blast_percent=70.0,
    )
    stored = StratificationDecision.objects.get(pk=decision_propose(facts, BFM90, NOW).pk)
    assert (stored.time_point, stored.proposed_group, stored.status) == (
        None,
        None,
        "needs_review",
    )
    assert stored.cut_offs["late_if_frontline_ended_on_or_before"] == "2022-08-01"
    assert stored.input_snapshot["frontline_status"] == "unknown"
    assert stored.reasons[0]["rule"] == "time_point.frontline_status_unknown"


def test_decision_values_is_the_one_mapping_from_engine_to_record() -> None:
    engine_decision = stratify(EARLY_COMBINED, BFM90)
    values = decision_values(EARLY_COMBINED, engine_decision)
    assert set(values) == set(StratificationDecision.DECIDED_FIELDS) - {"created_at"}
    assert values["warnings"] == [w.as_dict() for w in engine_decision.warnings]


def test_rows_from_before_confidence_was_recorded_read_as_not_recorded() -> None:
    # A decision stored by version 1.0: reasons without confidence, no warnings or
    # cut-off dates. It is not rewritten; readers see null ("not recorded"), not a
    # confidence taken from today's (relabelled) definition.
    old = StratificationDecision.objects.create(
        input_snapshot=EARLY_COMBINED.as_json(),
        protocol_slug="all-rez-bfm-90",
        protocol_version="1.0",
        time_point="early",
        site="combined",
        proposed_group="A",
        status="assigned",
        hsct_indicated=True,
        reasons=[{"rule": "a_early_marrow", "text": "A: ...", "source": "Tallen"}],
        created_at=NOW,
    )
    stored = StratificationDecision.objects.get(pk=old.pk)
    assert (stored.warnings, stored.cut_offs) == (None, None)
    assert stored.reasons == [{"rule": "a_early_marrow", "text": "A: ...", "source": "Tallen"}]
    assert stored.reason_list == [
        {"rule": "a_early_marrow", "text": "A: ...", "source": "Tallen", "confidence": None}
    ]
    assert stored.warning_list is None
    data = StratificationDecisionSerializer(stored).data
    assert data["reasons"][0]["confidence"] is None
    assert (data["warnings"], data["cut_offs"]) == (None, None)


def test_the_decision_serializer_embeds_status_group_cut_offs_warnings_and_reasons(
    decision: StratificationDecision,
) -> None:
    stored = StratificationDecision.objects.get(pk=decision.pk)
    data = StratificationDecisionSerializer(stored).data
    assert (data["status"], data["proposed_group"], data["time_point"]) == (
        "assigned",
        "A",
        "early",
    )
    assert data["hsct_indicated"] is True
    assert data["cut_offs"]["late_from"] == "2019-09-01"
    assert [r["confidence"] for r in data["reasons"]] == ["stated", "inferred", "recalled"]
    assert [w["rule"] for w in data["warnings"]] == ["bcr_abl1_unknown", "age_at_diagnosis_unknown"]
    assert "input_snapshot" not in data
    detail = StratificationDecisionDetailSerializer(stored).data
    assert detail["input_snapshot"] == EARLY_COMBINED.as_json()


def test_confirm_the_proposed_group_without_a_reason(
    decision: StratificationDecision, doctor: object
) -> None:
    decision_confirm(decision, doctor, "A", "", LATER)
    stored = StratificationDecision.objects.get(pk=decision.pk)
    assert (stored.confirmed_by, stored.confirmed_at, stored.chosen_group) == (doctor, LATER, "A")
    assert stored.override_reason == ""
    assert stored.is_confirmed and not stored.is_override


def test_a_decision_is_confirmed_only_once(
    decision: StratificationDecision, doctor: object
) -> None:
    decision_confirm(decision, doctor, "A", "", LATER)
    with pytest.raises(DecisionAlreadyConfirmedError):
        decision_confirm(decision, UserFactory(), "B", "second opinion", LATER)
    stored = StratificationDecision.objects.get(pk=decision.pk)
    assert (stored.chosen_group, stored.confirmed_by) == ("A", doctor)


def test_two_clinicians_confirming_at_once_one_wins(
    decision: StratificationDecision, doctor: object
) -> None:
    # Both loaded the unconfirmed decision before either confirmed it.
    mine = StratificationDecision.objects.get(pk=decision.pk)
    theirs = StratificationDecision.objects.get(pk=decision.pk)
    decision_confirm(mine, doctor, "A", "", LATER)
    with pytest.raises(DecisionAlreadyConfirmedError):
        decision_confirm(theirs, UserFactory(), "B", "I think B", LATER)
    # The loser's object shows what was actually stored.
    assert (theirs.chosen_group, theirs.confirmed_by) == ("A", doctor)
    assert StratificationDecision.objects.get(pk=decision.pk).chosen_group == "A"


def test_choosing_another_group_needs_a_reason(
    decision: StratificationDecision, doctor: object
) -> None:
    for reason in ("", "   "):
        with pytest.raises(Invalid) as caught:
            decision_confirm(decision, doctor, "B", reason, LATER)
        assert "override_reason" in caught.value.fields
        assert "differs from the proposed one (A)" in caught.value.fields["override_reason"][0]
    assert not StratificationDecision.objects.get(pk=decision.pk).is_confirmed

    decision_confirm(decision, doctor, "B", "  late relapse per local review  ", LATER)
    stored = StratificationDecision.objects.get(pk=decision.pk)
    assert (stored.chosen_group, stored.override_reason) == ("B", "late relapse per local review")
    assert stored.is_override


def test_assigning_a_group_to_a_needs_review_decision_needs_a_reason(doctor: object) -> None:
    decision = decision_propose(VERY_EARLY_EM, BFM90, NOW)
    with pytest.raises(Invalid) as caught:
        decision_confirm(decision, doctor, "C", "", LATER)
    assert "no group was proposed" in caught.value.fields["override_reason"][0]
    decision_confirm(decision, doctor, "C", "treated as group C per tumour board", LATER)
    assert StratificationDecision.objects.get(pk=decision.pk).chosen_group == "C"


@pytest.mark.parametrize("group", ["", "S2", "Z"])
def test_the_chosen_group_must_be_one_of_the_protocols(
    decision: StratificationDecision, doctor: object, group: str
) -> None:
    with pytest.raises(Invalid) as caught:
        decision_confirm(decision, doctor, group, "a reason", LATER)
    assert "chosen_group" in caught.value.fields


def test_an_anonymous_user_cannot_confirm(decision: StratificationDecision) -> None:
    from django.contrib.auth.models import AnonymousUser

    with pytest.raises(Invalid) as caught:
        decision_confirm(decision, AnonymousUser(), "A", "", LATER)
    assert "confirmed_by" in caught.value.fields


def test_a_decision_made_with_another_protocol_version_cannot_be_confirmed(
    doctor: object,
) -> None:
    decision = decision_propose(EARLY_COMBINED, BFM90, NOW)
    # A decision stored before the definition file was replaced by a new version.
    old = StratificationDecision.objects.create(
        **{f: getattr(decision, f) for f in StratificationDecision.DECIDED_FIELDS}
        | {"protocol_version": "0.9"}
    )
    with pytest.raises(Invalid) as caught:
        decision_confirm(old, doctor, "A", "", LATER)
    assert "version 1.1 is loaded" in caught.value.fields["chosen_group"][0]


# --- append-only ------------------------------------------------------------------------


def test_save_of_a_confirmed_decision_raises(
    decision: StratificationDecision, doctor: object
) -> None:
    decision_confirm(decision, doctor, "A", "", LATER)
    decision.override_reason = "edited afterwards"
    with pytest.raises(DecisionAlreadyConfirmedError):
        decision.save()
    assert StratificationDecision.objects.get(pk=decision.pk).override_reason == ""


def test_decided_fields_of_an_unconfirmed_decision_cannot_change(
    decision: StratificationDecision,
) -> None:
    decision.proposed_group = "B"
    with pytest.raises(DecisionImmutableError, match="proposed_group cannot change"):
        decision.save()
    assert StratificationDecision.objects.get(pk=decision.pk).proposed_group == "A"


def test_decisions_cannot_be_deleted_or_bulk_updated(decision: StratificationDecision) -> None:
    with pytest.raises(DecisionImmutableError):
        decision.delete()
    with pytest.raises(DecisionImmutableError):
        StratificationDecision.objects.all().delete()
    with pytest.raises(DecisionImmutableError):
        StratificationDecision.objects.filter(pk=decision.pk).update(proposed_group="B")
    assert StratificationDecision.objects.get(pk=decision.pk).proposed_group == "A"


def _raw_update(decision: StratificationDecision, **fields: object) -> None:
    """Bypass the model and the service: only the database constraints are left."""
    with transaction.atomic():
        StratificationDecision._base_manager.filter(pk=decision.pk).update(**fields)


def test_the_database_refuses_an_override_without_reason(
    decision: StratificationDecision, doctor: object
) -> None:
    with pytest.raises(IntegrityError):
        _raw_update(decision, confirmed_by=doctor, confirmed_at=LATER, chosen_group="B")
    # The same with a reason, or with the proposed group, is accepted.
    _raw_update(
        decision, confirmed_by=doctor, confirmed_at=LATER, chosen_group="A", override_reason=""
    )


def test_the_database_refuses_a_group_without_reason_for_needs_review(doctor: object) -> None:
    decision = decision_propose(VERY_EARLY_EM, BFM90, NOW)
    with pytest.raises(IntegrityError):
        _raw_update(decision, confirmed_by=doctor, confirmed_at=LATER, chosen_group="C")


def test_the_database_refuses_a_half_confirmation(decision: StratificationDecision) -> None:
    with pytest.raises(IntegrityError):
        _raw_update(decision, confirmed_at=LATER, chosen_group="A")


def test_the_database_refuses_a_group_on_needs_review(decision: StratificationDecision) -> None:
    with pytest.raises(IntegrityError):
        _raw_update(decision, status="needs_review")


def test_the_database_refuses_a_group_without_a_time_point(
    decision: StratificationDecision,
) -> None:
    with pytest.raises(IntegrityError):
        _raw_update(decision, time_point=None)
    with pytest.raises(IntegrityError):
        _raw_update(decision, time_point="later")


def test_warnings_and_cut_offs_are_decided_fields(decision: StratificationDecision) -> None:
    decision.warnings = []
    with pytest.raises(DecisionImmutableError, match="warnings cannot change"):
        decision.save()
    decision.refresh_from_db()
    decision.cut_offs = {}
    with pytest.raises(DecisionImmutableError, match="cut_offs cannot change"):
        decision.save()


# --- admin ----------------------------------------------------------------------------------


def test_admin_lists_and_shows_decisions_read_only(
    admin_client: object, decision: StratificationDecision
) -> None:
    assert admin_client.get("/admin/stratification/stratificationdecision/").status_code == 200
    page = admin_client.get(f"/admin/stratification/stratificationdecision/{decision.pk}/change/")
    assert page.status_code == 200
    assert b"a_early_combined" in page.content
    assert admin_client.get("/admin/stratification/stratificationdecision/add/").status_code == 403


def test_the_admin_cannot_confirm_a_decision_apart_from_its_course(
    admin_client: object, decision: StratificationDecision
) -> None:
    # Intentional change: confirming here used to skip the course (no schedule, still
    # "registered", and the API's confirm refused for ever after). The course service
    # confirms both together (tests/courses/test_admin.py).
    url = f"/admin/stratification/stratificationdecision/{decision.pk}/change/"
    refused = admin_client.post(url, {"chosen_group": "B", "override_reason": "tumour board"})
    assert refused.status_code == 403
    assert not StratificationDecision.objects.get(pk=decision.pk).is_confirmed
