"""Persisted stratification decisions: append-only.

A decision records what the engine proposed for one relapse (with the input snapshot,
the protocol version, the time point with its cut-off dates, the reasons and warnings,
each with rule id, text, source and confidence) and, once, what the clinician confirmed.

Rows written before reasons carried a confidence (protocol versions 1.0) are not
rewritten: their reasons have no ``confidence`` key and their ``warnings`` and
``cut_offs`` are null, meaning "not recorded at the time" — not "none". Readers
normalise a missing confidence to null (``StratificationDecision.reason_list``); they
never fill it in from today's definition, whose labels were corrected since. Nothing
a decision says may change afterwards: the confirmation is the only write after the
insert, done with a conditional UPDATE that touches exactly one still-unconfirmed row,
so two clinicians confirming at once cannot both win.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from config.errors import Refused
from stratification.facts import Site, TimePoint


class DecisionImmutableError(Exception):
    """An attempt to change or delete what a decision says (a programming error)."""


class DecisionAlreadyConfirmedError(DecisionImmutableError, Refused):
    """The decision was confirmed already (possibly a moment ago, by someone else): a
    refusal a person can meet, so it is a domain error too."""

    code = "already_confirmed"


class DecisionStatus(models.TextChoices):
    ASSIGNED = "assigned", "assigned"
    NEEDS_REVIEW = "needs_review", "needs review"


class StratificationDecisionQuerySet(models.QuerySet):
    """Bulk writes would bypass the append-only rule: refused."""

    def update(self, **kwargs: Any) -> int:
        raise DecisionImmutableError(
            "stratification decisions are append-only; confirm with services.decision_confirm"
        )

    def delete(self) -> tuple[int, dict[str, int]]:
        raise DecisionImmutableError("stratification decisions are append-only")


class StratificationDecision(models.Model):
    # What was decided (never changes after the insert).
    input_snapshot = models.JSONField(help_text="The relapse facts the engine was given.")
    protocol_slug = models.CharField(max_length=60)
    protocol_version = models.CharField(max_length=30)
    time_point = models.CharField(
        max_length=12,
        choices=TimePoint.choices,
        null=True,
        blank=True,
        help_text="None: not determined (front-line status unknown where it decides).",
    )
    cut_offs = models.JSONField(
        null=True,
        blank=True,
        help_text="The dates the time point turns on ({very_early_before, late_from, "
        "late_if_frontline_ended_on_or_before, on_therapy_implausible_after}); None: not "
        "recorded at the time.",
    )
    site = models.CharField(max_length=12, choices=Site.choices)
    proposed_group = models.CharField(
        max_length=20, null=True, blank=True, help_text="None: no rule matched (needs review)."
    )
    status = models.CharField(max_length=12, choices=DecisionStatus.choices)
    hsct_indicated = models.BooleanField(
        null=True, blank=True, help_text="None: depends on a value not known yet (e.g. MRD)."
    )
    reasons = models.JSONField(
        help_text="[{rule, text, source, confidence}] in decision order; rows from before "
        "confidence was recorded lack the key (read it as null: not recorded)."
    )
    warnings = models.JSONField(
        null=True,
        blank=True,
        help_text="[{rule, text, source, confidence}]: things to check that did not stop "
        "the stratification; None: not recorded at the time.",
    )
    created_at = models.DateTimeField(db_index=True)

    # The one-time confirmation.
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,  # who confirmed a clinical decision must stay known
        null=True,
        blank=True,
        related_name="confirmed_stratification_decisions",
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    chosen_group = models.CharField(max_length=20, null=True, blank=True)
    override_reason = models.TextField(blank=True, default="")

    objects = StratificationDecisionQuerySet.as_manager()

    DECIDED_FIELDS: ClassVar[tuple[str, ...]] = (
        "input_snapshot",
        "protocol_slug",
        "protocol_version",
        "time_point",
        "cut_offs",
        "site",
        "proposed_group",
        "status",
        "hsct_indicated",
        "reasons",
        "warnings",
        "created_at",
    )
    CONFIRMATION_FIELDS: ClassVar[tuple[str, ...]] = (
        "confirmed_by",
        "confirmed_at",
        "chosen_group",
        "override_reason",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["protocol_slug", "protocol_version"])]
        constraints = [
            models.CheckConstraint(
                condition=(Q(time_point__isnull=True) | Q(time_point__in=TimePoint.values))
                & Q(site__in=Site.values),
                name="stratdecision_known_time_point_and_site",
            ),
            # No time point, no group: an undetermined time point is never assigned.
            models.CheckConstraint(
                condition=Q(time_point__isnull=False) | Q(status=DecisionStatus.NEEDS_REVIEW),
                name="stratdecision_undetermined_time_point_needs_review",
            ),
            # A group is proposed exactly when the status is "assigned"; without a
            # group there is no HSCT indication either.
            models.CheckConstraint(
                condition=Q(status=DecisionStatus.ASSIGNED, proposed_group__isnull=False)
                | Q(
                    status=DecisionStatus.NEEDS_REVIEW,
                    proposed_group__isnull=True,
                    hsct_indicated__isnull=True,
                ),
                name="stratdecision_status_matches_proposed_group",
            ),
            # Confirmation fields are all set together, or none is.
            models.CheckConstraint(
                condition=Q(
                    confirmed_at__isnull=True,
                    confirmed_by__isnull=True,
                    chosen_group__isnull=True,
                    override_reason="",
                )
                | Q(
                    confirmed_at__isnull=False,
                    confirmed_by__isnull=False,
                    chosen_group__isnull=False,
                ),
                name="stratdecision_confirmation_complete",
            ),
            # Choosing another group than the proposed one (or any group when none was
            # proposed) needs a reason. Written without NULL comparisons that would
            # make the check "unknown" (which SQL lets pass).
            models.CheckConstraint(
                condition=Q(confirmed_at__isnull=True)
                | Q(proposed_group__isnull=False, chosen_group=F("proposed_group"))
                | ~Q(override_reason=""),
                name="stratdecision_override_needs_reason",
            ),
        ]

    def __str__(self) -> str:
        group = self.proposed_group or "no group"
        return f"{self.protocol_slug} {self.protocol_version}: {group} ({self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Insert once; afterwards only the one-time confirmation may be written."""
        if self._state.adding:
            super().save(*args, **kwargs)
            return
        stored = (
            type(self)
            ._base_manager.filter(pk=self.pk)
            .values(*self.DECIDED_FIELDS, "confirmed_at")
            .get()
        )
        if stored["confirmed_at"] is not None:
            raise DecisionAlreadyConfirmedError(
                f"stratification decision {self.pk} is confirmed and can no longer change"
            )
        changed = [f for f in self.DECIDED_FIELDS if getattr(self, f) != stored[f]]
        if changed:
            raise DecisionImmutableError(
                f"stratification decision {self.pk}: {', '.join(changed)} cannot change"
            )
        if self.confirmed_at is None:
            return  # nothing to write
        # Claim: the UPDATE only touches the row while it is still unconfirmed.
        claimed = (
            type(self)
            ._base_manager.filter(pk=self.pk, confirmed_at__isnull=True)
            .update(**{f: getattr(self, f) for f in self.CONFIRMATION_FIELDS})
        )
        if claimed != 1:
            raise DecisionAlreadyConfirmedError(
                f"stratification decision {self.pk} was confirmed in the meantime"
            )

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise DecisionImmutableError("stratification decisions are append-only")

    @staticmethod
    def _with_confidence(entries: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if entries is None:
            return None
        return [{"confidence": None, **entry} for entry in entries]

    @property
    def reason_list(self) -> list[dict[str, Any]]:
        """The reasons, each with a ``confidence`` key (null where not recorded)."""
        return self._with_confidence(self.reasons) or []

    @property
    def warning_list(self) -> list[dict[str, Any]] | None:
        """The warnings as :attr:`reason_list`; None where not recorded at the time."""
        return self._with_confidence(self.warnings)

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None

    @property
    def is_override(self) -> bool:
        return self.is_confirmed and self.chosen_group != self.proposed_group
