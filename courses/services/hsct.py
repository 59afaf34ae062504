"""The HSCT decision, in one place: what the protocol proposes for a course, on which
evidence, who confirmed it, and whether that confirmation still stands.

- **The rule** is the protocol file's ``hsct_indication`` for the course's group: fixed
  (indicated or not, e.g. ALL-REZ BFM 90 A and PPG; BFM 2002 S3/S4), or decided by MRD
  (BFM 2002 S2: MRD after F2 >= 10^-3, protocol front matter 2003 and Eckert 2013).
- **The deciding sample** of an MRD rule is the latest valid result *by sample date* at
  the rule's time point inside its deciding window (on or after the start of F2 + 5
  days): not the last one entered. A sample at that time point outside the window (a
  day-8 marrow labelled end of induction) is kept and shown with a warning, and never
  decides. While the block the window counts from is not recorded, no sample decides.
- **A proposal is only a proposal**: a clinician confirms it (``course_confirm_hsct``),
  and the confirmation keeps who, when, why and the evidence as it stood then.
- **A confirmed decision whose basis changes is flagged**, never left standing silently:
  its deciding MRD amended or voided, a later deciding sample pointing the other way, or
  a group change that changes the indication sets ``hsct_review_since`` (the
  ``hsct_decision_review`` alert reads it) until a clinician decides again, with a
  reason. The decision itself is not changed behind the clinician's back.

``decide`` is pure (plain values in, ``Evidence`` out): the services and the synthetic
cohort (courses/cohort.py) read the same rule through it. Its callers hold the course's
row lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from courses.models import MrdResult, TreatmentCourse
from courses.selectors import block_starts, protocol_for
from courses.services.common import audit
from stratification.definitions import HsctIndication
from stratification.engine import hsct_from_mrd


@dataclass(frozen=True, slots=True)
class Sample:
    """An MRD result as the decision reads it (plain values: a stored row, or one the
    synthetic cohort is about to write, pk None)."""

    pk: int | None
    sampled_on: date
    time_point: str
    value: float | None
    qualitative: str
    sensitivity: float | None

    @classmethod
    def of(cls, result: MrdResult) -> Sample:
        return cls(
            result.pk,
            result.sampled_on,
            result.time_point,
            result.value,
            result.qualitative or "",
            result.sensitivity,
        )

    @property
    def words(self) -> str:
        if self.value is not None:
            return f"{self.value:g}"
        return (self.qualitative or "").replace("_", " ")

    def as_dict(self) -> dict[str, Any]:
        return {
            "mrd_result": self.pk,
            "sampled_on": self.sampled_on.isoformat(),
            "time_point": self.time_point,
            "value": self.value,
            "qualitative": self.qualitative,
            "sensitivity": self.sensitivity,
        }


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the protocol proposes for a course now, and why."""

    group: str
    rule: str  # the protocol's rule id (hsct_s2_mrd, hsct_a, ...)
    mrd_decided: bool
    indicated: bool | None  # None: undecided (no deciding sample, or one that does not decide)
    text: str  # the basis in words
    source: str
    confidence: str
    sample: Sample | None = None  # the deciding sample (MRD rules only)
    window_from: date | None = None  # the deciding window opens (None: not placeable yet)
    window: str = ""  # the window in words ("on or after the start of block F2 + 5 days")
    warnings: tuple[str, ...] = field(default=())

    @property
    def basis(self) -> str:
        """One sentence for the proposal's basis, as the course has always shown it."""
        sample = f"Sample of {self.sample.sampled_on}: " if self.sample is not None else ""
        return f"{sample}{self.text} Rule {self.rule}: {self.source} ({self.confidence})."

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "rule": self.rule,
            "mrd_decided": self.mrd_decided,
            "indicated": self.indicated,
            "text": self.text,
            "source": self.source,
            "confidence": self.confidence,
            "sample": self.sample.as_dict() if self.sample is not None else None,
            "window_from": self.window_from.isoformat() if self.window_from else None,
            "window": self.window,
            "warnings": list(self.warnings),
        }


def decide(
    rule: HsctIndication,
    samples: Iterable[Sample],
    blocks: Sequence[tuple[str, date]],
) -> Evidence:
    """The proposal ``rule`` makes from a course's valid MRD results and blocks (block
    type, start date)."""
    if rule.indicated != "mrd_threshold":
        return Evidence(
            rule.group,
            rule.id,
            False,
            bool(rule.indicated),
            rule.text,
            rule.citation,
            rule.confidence,
        )
    window = rule.deciding_window
    opens = window.day(blocks) if window is not None else None
    window_words = f"on or after {window.words}" if window is not None else ""
    point = [s for s in samples if s.time_point == rule.mrd_time_point]
    inside = [s for s in point if opens is not None and s.sampled_on >= opens]
    warnings = []
    for s in sorted(point, key=lambda s: (s.sampled_on, s.pk or 0)):
        if s in inside:
            continue
        if opens is None:
            where = f"cannot be placed yet ({window_words}; that block is not recorded)"
        else:
            where = f"opens on {opens} ({window_words})"
        warnings.append(
            f"The MRD of {s.sampled_on} ({s.words}) is labelled {s.time_point.replace('_', ' ')} "
            f"but does not decide: the deciding window {where}. It is kept and shown."
        )
    # The latest by sample date decides (a back-entered older sample does not), the
    # later-entered one on a tie.
    deciding = max(inside, key=lambda s: (s.sampled_on, s.pk or 0), default=None)
    if deciding is None:
        outcome = hsct_from_mrd(rule, None)
    else:
        outcome = hsct_from_mrd(
            rule, deciding.value, deciding.qualitative or None, deciding.sensitivity
        )
    return Evidence(
        rule.group,
        outcome.rule,
        True,
        outcome.indicated if deciding is not None else None,
        outcome.basis,
        outcome.source,
        outcome.confidence,
        sample=deciding,
        window_from=opens,
        window=window_words,
        warnings=tuple(warnings),
    )


def _rule(course: TreatmentCourse) -> HsctIndication | None:
    """The HSCT rule of the group the course follows (else the proposed one)."""
    group = course.risk_group or course.proposed_group
    return protocol_for(course.protocol_slug).hsct_indication.get(group) if group else None


def deciding_window(
    course: TreatmentCourse, blocks: Sequence[tuple[str, date]]
) -> tuple[str, date | None] | None:
    """(time point, the day the window opens or None while unplaceable) where the
    course's group is MRD-decided with a deciding window; None otherwise. The schedule
    reads it so that a sample labelled with the deciding time point but taken before
    the window (a day-8 marrow before F2) does not close the deciding MRD step."""
    rule = _rule(course)
    if rule is None or rule.indicated != "mrd_threshold" or rule.deciding_window is None:
        return None
    return rule.mrd_time_point or "", rule.deciding_window.day(blocks)


def evidence_for(course: TreatmentCourse) -> Evidence | None:
    """What the protocol proposes for the course now (its confirmed group, else the
    proposed one); None without a group. Two queries for an MRD rule (the blocks and
    the samples at its time point, as plain values), none for a fixed one."""
    rule = _rule(course)
    if rule is None:
        return None
    if rule.indicated != "mrd_threshold":
        return decide(rule, (), ())
    rows = course.mrd_results.filter(time_point=rule.mrd_time_point).values_list(
        "pk", "sampled_on", "time_point", "value", "qualitative", "sensitivity"
    )
    samples = [Sample(pk, on, point, v, q or "", sens) for pk, on, point, v, q, sens in rows]
    return decide(rule, samples, block_starts(course))


def _changed_basis(course: TreatmentCourse, now_evidence: Evidence | None) -> str:
    """Why the confirmed decision no longer rests on the evidence it was confirmed on
    ("" when it still does)."""
    confirmed = course.hsct_confirmed_basis or {}
    decided = "HSCT indicated" if course.hsct_indicated else "no HSCT"
    on = course.hsct_confirmed_at.date() if course.hsct_confirmed_at else None
    was = (confirmed.get("sample") or {}) if confirmed.get("mrd_decided") else {}
    now = now_evidence.sample if now_evidence is not None else None
    if not now_evidence or not now_evidence.mrd_decided:
        return ""
    if was.get("mrd_result") is not None:
        if now is None or now.pk != was["mrd_result"]:
            current = MrdResult.with_voided.filter(pk=was["mrd_result"]).first()
            if current is None or current.voided_at is not None:
                gone = "was voided"
            else:
                gone = "no longer decides"
            if now is None:
                return (
                    f"The deciding MRD of {was['sampled_on']} that the decision ({decided}, "
                    f"confirmed {on}) rests on {gone}; no sample decides now."
                )
            if now_evidence.indicated != course.hsct_indicated:
                return (
                    f"The deciding MRD is now the sample of {now.sampled_on} ({now.words}), "
                    f"which points the other way: {now_evidence.text} The decision "
                    f"({decided}, confirmed {on}) rested on the sample of {was['sampled_on']}."
                )
            return ""
        before = (was.get("value"), was.get("qualitative") or "", was.get("sensitivity"))
        after = (now.value, now.qualitative, now.sensitivity)
        if before != after or was.get("sampled_on") != now.sampled_on.isoformat():
            old = Sample(
                None, now.sampled_on, now.time_point, before[0], before[1], before[2]
            ).words
            changes = [f"from {old} to {now.words}"] if old != now.words else []
            if before[2] != now.sensitivity:
                changes.append(f"sensitivity {before[2]} to {now.sensitivity}")
            if was.get("sampled_on") != now.sampled_on.isoformat():
                changes.append(f"sample date to {now.sampled_on}")
            return (
                f"The deciding MRD of {was['sampled_on']} was amended "
                f"({'; '.join(changes)}); the decision ({decided}, confirmed {on}) rests on "
                "the old value."
            )
        return ""
    # Confirmed without a deciding sample (before it arrived, or as an override): a
    # sample that now decides the other way reopens it.
    if now is not None and now_evidence.indicated not in (None, course.hsct_indicated):
        return (
            f"A deciding MRD has arrived (sample of {now.sampled_on}, {now.words}) that points "
            f"the other way: {now_evidence.text} The decision was {decided} (confirmed {on})."
        )
    return ""


def flag_for_review(
    course: TreatmentCourse, why: str, actor: AbstractBaseUser, now: datetime
) -> None:
    """Mark the course's confirmed HSCT decision as in doubt (the first reason stands
    until a clinician decides again)."""
    if course.hsct_review_since is not None:
        return
    course.hsct_review_since = course.patient.team.today(now)
    course.hsct_review_reason = why
    TreatmentCourse.objects.filter(pk=course.pk).update(
        hsct_review_since=course.hsct_review_since, hsct_review_reason=why
    )
    audit(course, actor, now, "hsct_review", "course", course.pk, {"reason": why})


_UNREAD: Any = object()  # hsct_refresh's "not read yet" (None is "no group")


def hsct_refresh(
    course: TreatmentCourse,
    actor: AbstractBaseUser,
    now: datetime,
    found: Evidence | None = _UNREAD,
) -> None:
    """After a write that can change the evidence (an MRD result or a block recorded,
    amended or voided; a group confirmed): the proposal follows the valid records, and
    a confirmed decision whose basis changed is flagged. ``course`` is locked;
    ``found``: evidence_for(course), when the caller has it."""
    if found is _UNREAD:
        found = evidence_for(course)
    stored = found.as_dict() if found is not None else {}
    fields: dict[str, Any] = {}
    if stored != course.hsct_evidence:
        fields["hsct_evidence"] = stored
    # The proposal the rules read (hsct_proposed, _on, _basis): an MRD rule's, on a
    # course that follows a group (a fixed indication is the group's own).
    proposes = found is not None and found.mrd_decided and course.risk_group is not None
    has_sample = proposes and found.sample is not None
    proposal = (
        found.indicated if has_sample else None,
        found.basis if has_sample else "",
        found.sample.sampled_on if has_sample else None,
    )
    before = (course.hsct_proposed, course.hsct_proposal_basis, course.hsct_proposed_on)
    if proposal != before:
        fields.update(
            hsct_proposed=proposal[0], hsct_proposal_basis=proposal[1], hsct_proposed_on=proposal[2]
        )
    if fields:
        TreatmentCourse.objects.filter(pk=course.pk).update(**fields)
        for name, value in fields.items():
            setattr(course, name, value)
    if proposal != before:
        audit(
            course,
            actor,
            now,
            "hsct_proposed",
            "course",
            course.pk,
            {
                "hsct_proposed": proposal[0],
                "basis": proposal[1],
                "mrd_result": found.sample.pk if has_sample else None,
            },
        )
    if course.hsct_confirmed_at is not None and course.hsct_indicated is not None:
        why = _changed_basis(course, found)
        if why:
            flag_for_review(course, why, actor, now)


def record_confirmation(
    course: TreatmentCourse,
    *,
    indicated: bool | None,
    found: Evidence | None,
    reason: str,
    actor: AbstractBaseUser | None,
    now: datetime,
) -> list[str]:
    """Set the course's HSCT decision as a clinician confirmed it (who, when, why, and
    the evidence ``found`` as it stands: evidence_for(course)), clearing a pending
    review; ``indicated`` None clears the confirmation (nothing decided). Returns the
    fields to save."""
    course.hsct_indicated = indicated
    if indicated is None:
        course.hsct_confirmed_at, course.hsct_confirmed_by = None, None
        course.hsct_confirm_reason, course.hsct_confirmed_basis = "", {}
    else:
        course.hsct_confirmed_at, course.hsct_confirmed_by = now, actor
        course.hsct_confirm_reason = reason
        course.hsct_confirmed_basis = found.as_dict() if found is not None else {}
    course.hsct_evidence = found.as_dict() if found is not None else {}
    course.hsct_review_since, course.hsct_review_reason = None, ""
    return [
        "hsct_indicated",
        "hsct_confirmed_at",
        "hsct_confirmed_by",
        "hsct_confirm_reason",
        "hsct_confirmed_basis",
        "hsct_evidence",
        "hsct_review_since",
        "hsct_review_reason",
    ]


def decision_summary(course: TreatmentCourse) -> dict[str, Any]:
    """The HSCT decision as the API and the course page show it, before and after
    confirmation: the indication the course follows, its status, what the evidence
    proposes now (basis, deciding sample, rule, source, warnings), who confirmed it,
    when, why and on what, and a pending review with its reason. No query (the
    confirming user is joined by the caller, or read here once)."""
    evidence = course.hsct_evidence or {}
    if course.hsct_review_since is not None:
        status = "review"
    elif course.hsct_indicated is not None and course.hsct_confirmed_at is not None:
        status = "confirmed"
    elif course.hsct_indicated is not None:
        status = "by_group"  # the group's fixed indication, not confirmed by a clinician yet
    elif course.hsct_proposed is not None or (evidence and evidence.get("sample")):
        status = "proposed"
    else:
        status = "undecided"
    confirmed = None
    if course.hsct_confirmed_at is not None:
        by = course.hsct_confirmed_by
        confirmed = {
            "by": by.get_username() if by is not None else None,
            "at": course.hsct_confirmed_at,
            "reason": course.hsct_confirm_reason,
            "basis": course.hsct_confirmed_basis or None,
        }
    return {
        "indicated": course.hsct_indicated,
        "status": status,
        "proposed": course.hsct_proposed,
        "evidence": evidence or None,
        "confirmed": confirmed,
        "review": (
            {"since": course.hsct_review_since, "reason": course.hsct_review_reason}
            if course.hsct_review_since is not None
            else None
        ),
    }
