"""Writes: propose a stratification decision, confirm it once.

The engine proposes; a clinician confirms (DESIGN.md: every automatic decision is a
proposal). ``now`` is read once by the caller and passed down.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction

from config.errors import Invalid
from stratification.definitions import ProtocolDefinition
from stratification.engine import Decision, stratify
from stratification.facts import RelapseFacts
from stratification.models import DecisionAlreadyConfirmedError, StratificationDecision
from stratification.selectors import protocol_get


def decision_values(facts: RelapseFacts, decision: Decision) -> dict[str, Any]:
    """The decided fields of a StratificationDecision row for an engine decision: the one
    mapping from the engine's result to the record (also for bulk builders such as the
    synthetic cohort, which add created_at and any confirmation themselves)."""
    data = decision.as_dict()
    return {
        "input_snapshot": facts.as_json(),
        "protocol_slug": decision.protocol,
        "protocol_version": decision.protocol_version,
        "time_point": decision.time_point,
        "cut_offs": data["cut_offs"],
        "site": decision.site,
        "proposed_group": decision.risk_group,
        "status": decision.status,
        "hsct_indicated": decision.hsct_indicated,
        "reasons": data["reasons"],
        "warnings": data["warnings"],
    }


@transaction.atomic
def decision_propose(
    facts: RelapseFacts, protocol: ProtocolDefinition, now: datetime
) -> StratificationDecision:
    """Run the engine and store its proposal, with the facts it was given."""
    decision = stratify(facts, protocol)
    return StratificationDecision.objects.create(**decision_values(facts, decision), created_at=now)


def confirmation_errors(
    decision: StratificationDecision, chosen_group: str | None, reason: str
) -> dict[str, list[str]]:
    """Why this confirmation would be refused ({field: [messages]}; empty = fine)."""
    errors: dict[str, list[str]] = {}
    protocol = protocol_get(decision.protocol_slug)
    if protocol is None or protocol.version != decision.protocol_version:
        loaded = f"version {protocol.version} is loaded" if protocol else "it is not loaded"
        errors["chosen_group"] = [
            f"the decision was made with {decision.protocol_slug} version "
            f"{decision.protocol_version} but {loaded}: stratify again"
        ]
        return errors
    if not chosen_group:
        errors["chosen_group"] = ["is required"]
    elif chosen_group not in protocol.group_ids:
        groups = ", ".join(g.id for g in protocol.groups)
        errors["chosen_group"] = [f"{chosen_group!r} is not one of the groups ({groups})"]
    elif chosen_group != decision.proposed_group and not reason.strip():
        if decision.proposed_group is None:
            why = "no group was proposed (needs review): say why you chose " + chosen_group
        else:
            why = (
                f"the chosen group ({chosen_group}) differs from the proposed one "
                f"({decision.proposed_group})"
            )
        errors["override_reason"] = [f"is required: {why}"]
    return errors


@transaction.atomic
def decision_confirm(
    decision: StratificationDecision,
    user: Any,
    chosen_group: str,
    reason: str,
    now: datetime,
) -> StratificationDecision:
    """Confirm the decision once: the clinician's group, and why if it is not the
    proposed one. Raises Invalid for a bad group or a missing reason and
    DecisionAlreadyConfirmedError (a Refused) if it was confirmed before — also when another
    clinician confirmed it a moment ago (the model's conditional UPDATE decides)."""
    if decision.is_confirmed:
        raise DecisionAlreadyConfirmedError(
            f"stratification decision {decision.pk} is already confirmed"
        )
    if user is None or not getattr(user, "is_authenticated", False):
        raise Invalid({"confirmed_by": ["a signed-in user must confirm"]})
    errors = confirmation_errors(decision, chosen_group, reason)
    Invalid.raise_if(errors)
    decision.confirmed_by = user
    decision.confirmed_at = now
    decision.chosen_group = chosen_group
    decision.override_reason = reason.strip()
    try:
        decision.save()
    except DecisionAlreadyConfirmedError:
        decision.refresh_from_db()
        raise
    return decision
