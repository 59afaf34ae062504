"""The demo cohort: a team's morning that reads like a real one.

Every demo course is one scenario of :data:`SCENARIOS` (one entry per situation: a state
to show, an alert kind to raise, a death, a second relapse, a back-entered course), and
is written through the same services as the API (``courses.services``), each call with
the moment the team would have made it (``now``: the clinical day, on the team's
calendar). So the demo holds nothing the API could not have produced, and no clinical
date is in the future: only planned steps (and a planned transplant date) are. Where a
team would override a transition's guard (a transplant without an MRD result in the
pre-HSCT window, going on with the HSCT indication undecided), the scenario gives the
team's reason, as a request would.

How a scenario is placed in time: its course walks the protocol's schedule template
for its group, step by step, each step done on its due date (which follows the actual
dates of the steps before it, courses/schedule.py) plus a drawn delay — mostly on
time, some days late, rarely weeks. The walk stops at ``until`` (the first step left
open), and the whole course is shifted so that its *placement day* falls ``lead`` days
from today: the open step's due date (due this week: a small positive lead; overdue: a
negative one past the step's grace), the ending's date (death, second relapse,
treatment failure) or, for a course that ran to its end, the completion. The relapse
comes a few days before the start of therapy, so the relapse dates spread over the
last three years by themselves (courses in follow-up relapsed long ago).

Deterministic: each scenario draws from its own stream, seeded with the cohort's seed
and the scenario's position, so the same seed and the same today give the same cohort
(and a scenario added at the end changes no other). The sweep that follows
(``alerts_sweep``) opens the alerts the scenarios were built to show.

Adding a scenario for a new alert kind: append an entry whose ``alerts`` names it
(tests/notifications/test_demo.py requires an open alert of every kind in
``notifications.rules.RULES``, and a scenario declaring it).
"""

from __future__ import annotations

import random
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from courses import services
from courses.models import (
    ACTIVE_STATES,
    MrdResult,
    Patient,
    PlannedStep,
    State,
    StepKind,
    StepStatus,
    TreatmentCourse,
)
from courses.selectors import protocol_for
from notifications.models import AlertKind
from notifications.signals import reevaluation_held_back
from stratification.definitions import Step
from teams.models import Team

BFM90 = "all-rez-bfm-90"
BFM2002 = "all-rez-bfm-2002"
# Demo patients' references: pseudonymous codes, numbered by scenario.
REFERENCE_PREFIX = "DEMO-"


@dataclass(frozen=True)
class Scenario:
    """One demo course (one situation). Only ``name``, ``protocol``, ``group`` and
    ``facts`` are required; the rest says how far the course got and what happened."""

    name: str
    protocol: str
    # The group the engine must propose for the drawn facts (None: needs review).
    group: str | None
    # Relapse patterns to draw from (see _relapse_facts): timing + site (+ "t_": T-ALL).
    facts: tuple[str, ...]
    # The first template step left open (None: every step done).
    until: str | None = None
    # Days from today to the placement day (see the module docstring).
    lead: int = 0
    # The alert kinds this scenario is there to show (the test checks they are open).
    alerts: tuple[str, ...] = ()
    # "registered": opened, not confirmed. "assessing": the response assessment is
    # under way (moved, no result yet). "no_response": the response assessment shows no
    # CR2 (M2 marrow) and the team has not decided yet. "undecided": ALL-REZ BFM 2002 S2
    # with its MRD proposal awaiting the clinician's HSCT decision. "mrd_awaited": S2
    # whose deciding MRD is not recorded: the team went on to the next block (R2 on
    # either arm) with a reason, the HSCT indication left undecided.
    stop: str = ""
    # ALL-REZ BFM 2002 S2: the MRD at the end of induction decides (True: >= 10^-3).
    hsct: bool | None = None
    # Template steps the team has not recorded (left open behind the walk).
    omit: tuple[str, ...] = ()
    # The donor search's status when the HSCT referral is recorded.
    donor_search: str = "ongoing"
    # The pre-HSCT MRD result (a fraction) instead of the usual drawn, low one.
    pre_hsct_mrd: float | None = None
    # Delay range (days) of every step after the first, instead of the usual draw
    # (and its cap: see DRIFT_MARGIN_DAYS).
    late: tuple[int, int] | None = None
    # How the course ended off protocol: death, second_relapse, lost_to_follow_up
    # (``after`` days after the last step done), refractory or alternative (at the
    # response assessment, ``until`` being "response").
    ending: str = ""
    after: int = 0
    # Follow-up events after the course closed: (kind, days after it closed).
    then: tuple[tuple[str, int], ...] = ()
    # Entered late: the course was typed in this many days ago, all of it at once.
    back_entered: int | None = None
    # Finishing touches, by name (see _Course.touch_*): a corrected fact, a donor
    # search that drags on, a course nobody wrote on for weeks, a second course.
    touches: tuple[str, ...] = ()


S = Scenario
K = AlertKind
# One entry per situation; the proportions of the groups follow the trials roughly
# (ALL-REZ BFM 2002: S2 the largest stratum, S1 the smallest; ALL-REZ BFM 90: B the
# largest group), both protocols in use, ALL-REZ BFM 2002 the more recent.
SCENARIOS: tuple[Scenario, ...] = (
    # -- opened, waiting for a clinician ------------------------------------------------
    S(
        "awaiting confirmation",
        BFM2002,
        "S2",
        ("late_bm",),
        stop="registered",
        # Opened nine days ago: past stratification_unconfirmed_days (7).
        lead=-9,
        alerts=(K.STRATIFICATION_UNCONFIRMED,),
    ),
    S(
        "needs review: very early isolated EM",
        BFM90,
        None,
        ("very_early_em",),
        stop="registered",
        lead=-3,
    ),
    # -- induction -----------------------------------------------------------------------
    S("confirmed today", BFM2002, "S3", ("early_bm",), until="f1", lead=0),
    S(
        "induction on time",
        BFM2002,
        "S2",
        ("early_combined", "late_bm"),
        until="f2",
        lead=3,
        # Its MRD will say HSCT: the donor search started with the first block.
        hsct=True,
    ),
    S(
        "no HSCT referral (S4)",
        BFM2002,
        "S4",
        ("very_early_bm", "t_late_bm"),
        until="f2",
        lead=2,
        omit=("hsct_referral",),
        alerts=(K.HSCT_REFERRAL_MISSING,),
    ),
    S(
        "no HSCT referral (A)",
        BFM90,
        "A",
        ("early_bm",),
        until="block_2",
        lead=5,
        omit=("hsct_referral",),
        alerts=(K.HSCT_REFERRAL_MISSING,),
    ),
    S(
        "end-of-induction MRD overdue",
        BFM2002,
        "S3",
        ("early_bm",),
        until="mrd_end_of_induction",
        lead=-9,
        alerts=(K.STEP_OVERDUE,),
    ),
    S(
        "induction death",
        BFM90,
        "PPG",
        ("t_late_bm", "very_early_bm"),
        until="block_2",
        ending="death",
        after=9,
        lead=-40,
    ),
    # -- response assessment -------------------------------------------------------------
    S(
        "awaiting the marrow result",
        BFM2002,
        "S1",
        ("late_em",),
        until="response",
        lead=-1,
        stop="assessing",
        hsct=False,
    ),
    S(
        "HSCT decision pending (S2, MRD high)",
        BFM2002,
        "S2",
        ("late_bm",),
        until=None,
        # The marrow 8 days ago, its MRD sampled then or before: past the decision's
        # 7 days (hsct_decision_pending_days) whatever the drawn delays.
        lead=-8,
        stop="undecided",
        hsct=True,
        alerts=(K.HSCT_DECISION_PENDING,),
    ),
    S(
        "response assessment overdue",
        BFM90,
        "B",
        ("late_bm",),
        until="response",
        lead=-10,
        alerts=(K.STEP_OVERDUE,),
    ),
    # -- post-remission chemotherapy -----------------------------------------------------
    S(
        "post-remission on time (S2)",
        BFM2002,
        "S2",
        ("late_bm", "late_combined"),
        until="chemo_block_5",
        lead=4,
        hsct=False,
    ),
    S("post-remission on time (B)", BFM90, "B", ("late_bm",), until="block_4", lead=1),
    S(
        "cumulative delay",
        BFM2002,
        "S2",
        ("late_bm",),
        until="chemo_block_6",
        lead=2,
        hsct=False,
        # Five or six days late at each of the six steps since F1 (count recovery,
        # inside each step's grace): under 28 days behind the plan after four of them,
        # 30 or more after six, so cumulative_delay opened within the last seven weeks.
        late=(5, 6),
        alerts=(K.CUMULATIVE_DELAY,),
    ),
    S(
        "block overdue",
        BFM90,
        "B",
        ("late_combined", "late_bm"),
        until="block_5",
        lead=-11,
        alerts=(K.STEP_OVERDUE,),
    ),
    S(
        "irradiation overdue",
        BFM2002,
        "S1",
        ("late_em",),
        until="irradiation",
        lead=-19,
        hsct=False,
        alerts=(K.STEP_OVERDUE,),
    ),
    S(
        "front-line end date corrected",
        BFM2002,
        "S2",
        ("late_bm",),
        until="chemo_block_4",
        lead=6,
        hsct=False,
        touches=("stale_patient",),
        alerts=(K.STRATIFICATION_STALE,),
    ),
    # -- HSCT work-up --------------------------------------------------------------------
    S("work-up on time", BFM2002, "S4", ("very_early_bm", "t_early_bm"), until="block_4", lead=3),
    S(
        "transplant soon, no MRD (S3)",
        BFM2002,
        "S3",
        ("early_bm",),
        until="mrd_pre_hsct",
        lead=3,
        alerts=(K.MRD_MISSING_BEFORE_HSCT,),
    ),
    S(
        "transplant soon, no MRD (A)",
        BFM90,
        "A",
        ("early_combined", "early_bm"),
        until="mrd_pre_hsct",
        lead=6,
        alerts=(K.MRD_MISSING_BEFORE_HSCT,),
    ),
    S(
        "HSCT delayed: donor search",
        BFM90,
        "PPG",
        ("t_late_bm", "t_early_bm"),
        until="hsct",
        lead=-52,
        touches=("donor_search_slow",),
        alerts=(K.HSCT_DELAYED,),
    ),
    S(
        "HSCT delayed: donor found late",
        BFM2002,
        "S4",
        ("very_early_bm",),
        until="hsct",
        lead=-55,
        touches=("donor_found_late",),
        alerts=(K.HSCT_DELAYED,),
    ),
    S(
        "blast count corrected",
        BFM2002,
        "S3",
        ("early_bm",),
        until="block_4",
        lead=2,
        touches=("stale_relapse",),
        alerts=(K.STRATIFICATION_STALE,),
    ),
    # -- transplanted --------------------------------------------------------------------
    S("after HSCT", BFM2002, "S3", ("early_bm",), until="end_of_therapy", lead=68),
    S(
        "transplanted without pre-HSCT MRD",
        BFM90,
        "A",
        ("early_bm",),
        until="end_of_therapy",
        lead=80,
        # The sample was not evaluable: the team transplanted with a reason, and closed
        # the time point with it (no overdue step left behind the transplant).
        omit=("mrd_pre_hsct",),
        alerts=(K.MRD_MISSING_BEFORE_HSCT,),
    ),
    # -- maintenance ---------------------------------------------------------------------
    S("maintenance (B)", BFM90, "B", ("late_bm",), until="end_of_therapy", lead=300),
    S(
        "maintenance (S2)",
        BFM2002,
        "S2",
        ("late_bm", "early_em"),
        until="end_of_therapy",
        lead=450,
        hsct=False,
    ),
    S("maintenance (C)", BFM90, "C", ("late_em", "early_em"), until="end_of_therapy", lead=120),
    S(
        "maintenance, no visit for three months",
        BFM2002,
        "S1",
        ("late_em",),
        until="end_of_therapy",
        lead=210,
        hsct=False,
        touches=("stalled",),
        alerts=(K.COURSE_STALLED,),
    ),
    S(
        "maintenance start overdue",
        BFM2002,
        "S2",
        ("late_combined",),
        until="maintenance",
        lead=-16,
        hsct=False,
        alerts=(K.STEP_OVERDUE,),
    ),
    S(
        "maintenance, no visit recorded (C)",
        BFM90,
        "C",
        ("late_em",),
        until="end_of_therapy",
        lead=380,
        touches=("stalled",),
        alerts=(K.COURSE_STALLED,),
    ),
    # -- completed, in follow-up ---------------------------------------------------------
    S("completed after HSCT (S4)", BFM2002, "S4", ("very_early_bm", "t_late_bm"), lead=-420),
    S("completed after HSCT (A)", BFM90, "A", ("early_bm",), lead=-250),
    S("completed (B)", BFM90, "B", ("late_bm", "late_combined"), lead=-150),
    S("completed (S2)", BFM2002, "S2", ("late_bm",), lead=-60, hsct=False),
    S(
        "second relapse in follow-up, died",
        BFM2002,
        "S3",
        ("early_bm",),
        lead=-330,
        then=(("second_relapse", 240), ("death", 300)),
    ),
    # -- off protocol ----------------------------------------------------------------------
    S(
        "refractory, died",
        BFM2002,
        "S4",
        ("t_early_bm", "very_early_bm"),
        until="response",
        ending="refractory",
        lead=-200,
        then=(("death", 75),),
    ),
    S(
        "no CR2: alternative therapy",
        BFM2002,
        "S2",
        ("late_combined",),
        until="response",
        ending="alternative",
        lead=-130,
        hsct=False,
    ),
    S(
        "death after HSCT",
        BFM2002,
        "S3",
        ("early_bm",),
        until="end_of_therapy",
        ending="death",
        after=46,
        lead=-280,
    ),
    S(
        "second relapse in maintenance",
        BFM90,
        "B",
        ("late_bm",),
        until="end_of_therapy",
        ending="second_relapse",
        after=200,
        lead=-8,
        touches=("second_course",),
    ),
    S(
        "lost to follow-up",
        BFM2002,
        "S2",
        ("early_em",),
        until="end_of_therapy",
        ending="lost_to_follow_up",
        after=150,
        lead=-90,
        hsct=False,
    ),
    # -- entered late ----------------------------------------------------------------------
    S("back-entered (B)", BFM90, "B", ("late_bm",), until="block_4", lead=5, back_entered=1),
    S(
        "back-entered (S2)",
        BFM2002,
        "S2",
        ("late_bm",),
        until="chemo_block_4",
        lead=12,
        hsct=False,
        back_entered=0,
    ),
    # -- the HSCT decision path (issue 13): appended, so no other scenario moves ------------
    S(
        "deciding MRD not in (S2), R2 started",
        BFM2002,
        "S2",
        ("late_bm", "early_em"),
        lead=-10,
        omit=("mrd_end_of_induction",),
        stop="mrd_awaited",
        alerts=(K.MRD_DECISION_MISSING,),
    ),
    S(
        "no CR2 after induction, no decision yet",
        BFM2002,
        "S4",
        ("t_early_bm", "very_early_bm"),
        until="response",
        lead=-9,
        stop="no_response",
        alerts=(K.NON_RESPONSE,),
    ),
    S(
        "donor search not started (S3)",
        BFM2002,
        "S3",
        ("early_bm",),
        # End of induction in four days. Referred with F1 (or up to two weeks after
        # it: a drawn delay), three to eight weeks ago; the HLA typing was never sent.
        until="mrd_end_of_induction",
        lead=4,
        donor_search="not_started",
        alerts=(K.DONOR_SEARCH_STALLED,),
    ),
    S(
        "MRD high before a planned transplant",
        BFM90,
        "PPG",
        ("t_late_bm", "very_early_bm"),
        until="hsct",
        lead=4,
        pre_hsct_mrd=0.002,
        alerts=(K.MRD_HIGH_BEFORE_HSCT,),
    ),
    # -- the HSCT decision watched (issue 22): appended, so no other scenario moves ---------
    S(
        "HSCT proposed, not confirmed (S4)",
        BFM2002,
        "S4",
        ("very_early_bm", "t_late_bm"),
        # Opened five days ago: two days past hsct_proposal_unconfirmed_days (3).
        stop="registered",
        lead=-5,
        alerts=(K.HSCT_PROPOSAL_UNCONFIRMED,),
    ),
    S(
        "HSCT decision in doubt: deciding MRD amended (S2)",
        BFM2002,
        "S2",
        ("late_bm",),
        until="chemo_block_4",
        lead=5,
        hsct=False,
        touches=("hsct_review",),
        alerts=(K.HSCT_DECISION_REVIEW,),
    ),
)


def reference(index: int) -> str:
    return f"{REFERENCE_PREFIX}{index + 1:03d}"


# --- relapse facts ---------------------------------------------------------------------


def _relapse_facts(
    pattern: str, rng: random.Random, relapse_day: date
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The patient's and the relapse's data for a relapse pattern ("late_bm",
    "t_early_bm", ...) on ``relapse_day``. Timing as the BFM relapse trials define it
    (clinical notes): very early < 18 months after diagnosis (here: during front-line
    therapy), early >= 18 months after diagnosis and < 6 months after its end, late
    >= 6 months after its end. Front-line therapy lasts about two years."""
    lineage = "T" if pattern.startswith("t_") else "B"
    timing, site = pattern.removeprefix("t_").rsplit("_", 1)
    if timing == "very_early":
        diagnosis = relapse_day - timedelta(days=rng.randint(240, 480))
        end = None
    else:
        gap = rng.randint(30, 150) if timing == "early" else rng.randint(240, 1000)
        end = relapse_day - timedelta(days=gap)
        diagnosis = end - timedelta(days=rng.randint(700, 760))
    em_sites: list[str] = []
    if site == "bm":
        kind, blasts = "isolated_bm", float(rng.randint(40, 95))
    elif site == "combined":
        kind, blasts = "combined", float(rng.randint(10, 80))
        em_sites = [rng.choice(["cns", "cns", "testis"])]
    else:
        kind, blasts = "isolated_em", float(rng.randint(0, 4))
        em_sites = [rng.choice(["cns", "cns", "testis"])]
    sex = "male" if "testis" in em_sites else rng.choice(["female", "male"])
    patient = {
        "birth_year": diagnosis.year - rng.randint(2, 14),
        "birth_month": rng.randint(1, 12),
        "sex": sex,
        "immunophenotype": lineage,
        "bcr_abl1": "negative",
        "initial_diagnosis_date": diagnosis,
        "frontline_protocol": "AIEOP-BFM ALL 2017",
        "frontline_status": "on_therapy" if end is None else "completed",
        "frontline_end_date": end,
    }
    # A first relapse without a prior HSCT, said so: the service takes neither from a
    # default (the patient is new, so no record here says).
    relapse = {
        "relapse_date": relapse_day,
        "site": kind,
        "em_sites": em_sites,
        "bm_blast_percent": blasts,
        "relapse_number": 1,
        "prior_hsct": False,
    }
    return patient, relapse


# --- placing a course in time ------------------------------------------------------------

# An arbitrary origin: the walk is computed relative to it, then shifted.
ORIGIN = date(2000, 1, 3)
# How far behind the protocol plan from the start a course's drawn delays may add up:
# this many days under cumulative_delay's threshold (the protocol's; 28 days, a local
# default), so only the scenario there to show it runs four weeks behind. Delays of a
# few days a block add up to that over a long course, and a demo where half the
# maintenance courses raised it since last year would not read like a team's morning.
DRIFT_MARGIN_DAYS = 7


def _delay(rng: random.Random, step: Step, late: tuple[int, int] | None) -> int:
    """How late a step was done after its due date: mostly on time or a few days (count
    recovery), sometimes a week or two. A transplant happens close to its date (so the
    pre-HSCT MRD stays in its window)."""
    if late is not None:
        return rng.randint(*late)
    if step.kind == StepKind.HSCT:
        return rng.randint(0, 5)
    return rng.choices(
        [0, rng.randint(1, 3), rng.randint(4, 8), rng.randint(9, 16)], [45, 32, 17, 6]
    )[0]


@dataclass
class Walk:
    steps: tuple[Step, ...]
    open_index: int  # index of the first step left open (len(steps): none)
    due: dict[str, date]  # every step's due date as the schedule would compute it
    done: dict[str, date]  # the day each walked step was done

    def shifted(self, days: int) -> Walk:
        move = timedelta(days=days)
        return Walk(
            self.steps,
            self.open_index,
            {k: d + move for k, d in self.due.items()},
            {k: d + move for k, d in self.done.items()},
        )


def _walk(
    steps: tuple[Step, ...], scenario: Scenario, rng: random.Random, omit: set[str], drift: int
) -> Walk:
    """Due and done dates from ORIGIN, as courses.schedule computes due dates: a step is
    due its offset after its anchor's actual date (done, or due while open). Drawn
    delays add up to at most ``drift`` days behind the plan (see DRIFT_MARGIN_DAYS)."""
    keys = [s.id for s in steps]
    open_index = keys.index(scenario.until) if scenario.until else len(steps)
    actual: dict[str, date] = {}
    due: dict[str, date] = {}
    done: dict[str, date] = {}
    behind: dict[str, int] = {}  # days behind the plan from the start (anchors add up)
    for index, step in enumerate(steps):
        anchor = step.anchor if step.anchor in keys else ""
        base = actual[anchor] if anchor else ORIGIN
        behind[step.id] = behind[anchor] if anchor else 0
        due[step.id] = base + timedelta(days=step.offset_days)
        walked = index < open_index and step.id not in omit
        if walked:
            delay = 0 if index == 0 else _delay(rng, step, scenario.late)
            if scenario.late is None:
                delay = min(delay, max(drift - behind[step.id], 0))
            behind[step.id] += delay
            done[step.id] = due[step.id] + timedelta(days=delay)
        actual[step.id] = done.get(step.id, due[step.id])
    return Walk(steps, open_index, due, done)


# --- writing one course through the services ----------------------------------------------


class _Course:
    """One scenario's course, written through the services at the moments the team
    would have written it."""

    def __init__(
        self,
        team: Team,
        scenario: Scenario,
        index: int,
        *,
        now: datetime,
        actor: AbstractBaseUser,
        seed: int,
    ) -> None:
        self.team, self.scenario, self.index = team, scenario, index
        self.now, self.actor = now, actor
        self.today = team.today(now)
        self.zone = zoneinfo.ZoneInfo(team.time_zone)
        self.rng = random.Random(f"{seed}:{index}")
        self.protocol = protocol_for(scenario.protocol)
        self.course: TreatmentCourse | None = None
        self.entered = (
            None if scenario.back_entered is None else self.today - timedelta(scenario.back_entered)
        )

    # -- time ----------------------------------------------------------------------------

    def at(self, day: date, hour: int = 11) -> datetime:
        """When the team wrote what happened on ``day``: that day, in the team's time
        zone (never after now); a back-entered course was written all at once."""
        if self.entered is not None:
            day, hour = max(day, self.entered), 10
        moment = datetime.combine(day, time(hour), tzinfo=self.zone)
        return min(moment, self.now)

    # -- the course ------------------------------------------------------------------------

    def write(self) -> TreatmentCourse:
        scenario, rng = self.scenario, self.rng
        steps = self._template()
        drift = self.protocol.alert_days("cumulative_delay_days") - DRIFT_MARGIN_DAYS
        walk = _walk(steps, scenario, rng, self._omitted(), drift)
        placement = self._placement(walk)
        shift = (self.today + timedelta(days=scenario.lead) - placement).days
        walk = walk.shifted(shift)
        start = walk.due[steps[0].id] if steps else self.today + timedelta(scenario.lead)
        relapse_day = start - timedelta(days=rng.randint(3, 10))
        if scenario.stop == "registered":
            relapse_day = self.today + timedelta(scenario.lead) - timedelta(rng.randint(2, 6))
        pattern = rng.choice(scenario.facts)
        patient_data, relapse_data = _relapse_facts(pattern, rng, relapse_day)
        opened = relapse_day + timedelta(days=rng.randint(1, 2))
        if scenario.stop == "registered":
            opened = self.today + timedelta(scenario.lead)
        patient = services.patient_create(
            team_id=self.team.pk,
            data={"reference": reference(self.index), **patient_data},
            now=self.at(opened, 9),
        )
        relapse = services.relapse_create(
            patient=patient, data=relapse_data, now=self.at(opened, 9)
        )
        course = services.course_create(
            relapse=relapse,
            protocol_slug=scenario.protocol,
            actor=self.actor,
            now=self.at(opened, 9),
        )
        if course.proposed_group != scenario.group:
            raise ValueError(
                f"demo scenario '{scenario.name}': the engine proposed "
                f"{course.proposed_group} for a {pattern} relapse, not {scenario.group}"
            )
        self.course = course
        if scenario.stop != "registered":
            self._treat(walk, start)
        for touch in scenario.touches:
            getattr(self, f"touch_{touch}")(walk)
        self._follow_up(walk)
        return course

    def _omitted(self) -> set[str]:
        """Template steps nobody records: the scenario's, and the HSCT referral of an
        S2 course whose MRD said no HSCT (skipped with that reason at the decision)."""
        omit = set(self.scenario.omit)
        if self.scenario.group == "S2" and self.scenario.hsct is False:
            omit.add("hsct_referral")
        return omit

    def _template(self) -> tuple[Step, ...]:
        """The steps the course walks: its group's template, on the branch of the HSCT
        indication it ends up following (ALL-REZ BFM 2002 S2: the one its MRD decides;
        the steps before the decision are the same on both)."""
        if self.scenario.group is None or self.scenario.stop == "registered":
            return ()
        return self.protocol.schedule_for(self.scenario.group).steps_for(self.hsct)

    def _placement(self, walk: Walk) -> date:
        scenario = self.scenario
        if not walk.steps:
            return ORIGIN
        if scenario.ending:
            return self._ending_day(walk)
        if scenario.until is not None:
            return walk.due[scenario.until]
        return max(walk.done.values())

    def _ending_day(self, walk: Walk) -> date:
        if self.scenario.ending in ("refractory", "alternative"):
            return walk.due["response"]
        return max(walk.done.values()) + timedelta(days=self.scenario.after)

    @property
    def hsct(self) -> bool | None:
        """The HSCT indication the course follows once decided (None: undecided)."""
        if self.scenario.stop == "undecided":
            return None
        rule = self.protocol.hsct_indication[self.scenario.group].indicated
        return rule if isinstance(rule, bool) else self.scenario.hsct

    # -- therapy ---------------------------------------------------------------------------

    def _treat(self, walk: Walk, start: date) -> None:
        scenario = self.scenario
        blocks_first = scenario.back_entered is not None
        walked = [s for s in walk.steps if s.id in walk.done]
        if blocks_first:
            # Entered late: the first blocks are typed in first, the stratification is
            # confirmed after them (the start of therapy: the first block's date).
            early = [s for s in walked if s.kind == StepKind.BLOCK][:2]
            for step in early:
                self._block(step, walk.done[step.id], walk.due[step.id])
            walked = [s for s in walked if s not in early]
            self._confirm(start)
            self._move("start_induction", start)
        else:
            self._confirm(start)
        order = sorted(walked, key=lambda s: (walk.done[s.id], walk.steps.index(s)))
        for step in order:
            self._do(step, walk.done[step.id], walk)
        if scenario.stop == "assessing":
            self._move("assess_response", walk.due["response"])
        elif scenario.stop == "no_response":
            # The marrow after induction is not in remission; whether the course leaves
            # the protocol (refractory, alternative therapy) is still to be decided.
            self._move("assess_response", walk.due["response"])
            self._assessment(walk.due["response"], marrow="M2", cr2=False)
        elif scenario.stop == "mrd_awaited":
            # In CR2, the deciding MRD result not in: R2 opens either arm, so the team
            # goes on without the decision, and says why (the hsct_decided guard).
            self._move(
                "continue_chemotherapy",
                walk.done["response"],
                reason="CR2; the end-of-induction MRD result is still awaited from the "
                "reference laboratory. R2 is the same block on both arms: started on time, "
                "the HSCT indication to be decided when the result is in.",
            )
        if scenario.ending:
            self._end(walk)

    def _confirm(self, start: date) -> None:
        self.course = services.course_confirm_stratification(
            self.course,
            risk_group=self.scenario.group,
            reason="",
            actor=self.actor,
            now=self.at(start, 9),
            start_date=start,
        )

    def _move(self, name: str, on: date, **extra: str) -> None:
        self.course = services.course_transition(
            self.course, name=name, actor=self.actor, now=self.at(on, 16), on=on, **extra
        )

    def _step(self, key: str) -> PlannedStep:
        return PlannedStep.objects.get(course=self.course, key=key)

    def _do(self, step: Step, day: date, walk: Walk) -> None:
        kind = step.kind
        if kind == StepKind.BLOCK:
            if step is walk.steps[0] and self.scenario.back_entered is None:
                self._move("start_induction", day)
            self._block(step, day, walk.due[step.id])
            if self.hsct and step.id in ("block_3", "hsct_block_3"):
                self._donor_found(day, walk)
        elif kind == StepKind.HSCT_REFERRAL:
            services.referral_save(
                self.course,
                data={
                    "referred_on": day,
                    "donor_search_status": self.scenario.donor_search,
                    "centre": "Demo transplant centre",
                },
                actor=self.actor,
                now=self.at(day, 14),
            )
        elif kind == StepKind.MRD:
            deciding = step.mrd_time_point == "end_of_induction" and self.scenario.group == "S2"
            if deciding:
                # The S2 result that decides: >= 10^-3 for HSCT (Eckert 2013).
                self._mrd(step.mrd_time_point, day, 0.004 if self.scenario.hsct else None)
                self._decide_hsct(day)
            elif step.mrd_time_point == "pre_hsct" and self.scenario.pre_hsct_mrd is not None:
                self._mrd(step.mrd_time_point, day, self.scenario.pre_hsct_mrd)
            else:
                self._mrd(step.mrd_time_point, day)
        elif kind == StepKind.RESPONSE_ASSESSMENT:
            self._move("assess_response", day)
            self._assessment(day, marrow="M1", cr2=True)
            if self.hsct is True:
                self._move("start_hsct_workup", day)
            elif self.hsct is False:
                self._move("continue_chemotherapy", day)
        elif kind == StepKind.IRRADIATION:
            self._mark_done(step, day)
        elif kind == StepKind.MAINTENANCE_START:
            self._mark_done(step, day)
            self._move("start_maintenance", day)
        elif kind == StepKind.HSCT:
            services.referral_save(
                self.course,
                data={"performed_on": day, "donor_search_status": "donor_found"},
                actor=self.actor,
                now=self.at(day, 15),
            )
            reason = self._transplant_reason()
            if reason:
                # The team closes the pre-HSCT MRD time point with the same reason.
                services.step_update(
                    self._step("mrd_pre_hsct"),
                    data={"status": StepStatus.SKIPPED, "reason": reason},
                    actor=self.actor,
                    now=self.at(day, 15),
                )
            self._move("transplant", day, reason=reason)
            if day + timedelta(days=28) <= self._last_day(walk):
                self._mrd("post_hsct", day + timedelta(days=28))
        elif kind == StepKind.END_OF_THERAPY:
            self._move("complete", day)

    def _transplant_reason(self) -> str:
        """The override a team gives when it transplants without an MRD result in the
        pre-HSCT window (the transition's guard asks for it, as the API would)."""
        if "mrd_pre_hsct" not in self.scenario.omit:
            return ""
        return (
            "Pre-HSCT MRD sample not evaluable (clotted aspirate) and conditioning had "
            "started; transplanted on the CR2 marrow, as agreed with the transplant centre."
        )

    def _last_day(self, walk: Walk) -> date:
        """The last day this course's record reaches (today, or its end)."""
        if self.scenario.ending:
            return self._ending_day(walk)
        return self.today

    def _block(self, step: Step, day: date, due: date) -> None:
        last = day + timedelta(days=max((step.duration_days or 5) - 1, 0))
        services.block_record(
            self.course,
            data={
                "block_type": step.block_type,
                "start_date": day,
                # A block still running has no end date yet (never one in the future).
                "end_date": last if last <= self.today else None,
                "delay_reason": "count recovery" if day > due else "",
            },
            actor=self.actor,
            now=self.at(min(last, self.today), 15),
        )

    def _mrd(self, point: str, day: date, value: float | None | str = "drawn") -> None:
        """An MRD result (RQ-PCR, sensitivity 10^-4): ``value`` as a fraction, None for
        a negative result, or drawn: mostly negative, otherwise low."""
        if value == "drawn":
            value = self.rng.choice([None, None, 0.0002, 0.0005])
        data: dict[str, Any] = {
            "sampled_on": day,
            "time_point": point,
            "unit": "fraction",
            "sensitivity": 0.0001,
        }
        if value is None:
            data["qualitative"] = "negative"
        else:
            data["value"] = value
        services.mrd_record(self.course, data=data, actor=self.actor, now=self.at(day, 17))

    def _decide_hsct(self, day: date) -> None:
        """S2: the MRD at the end of induction proposes the HSCT indication; a clinician
        confirms it the same day (the undecided scenario leaves it waiting)."""
        if self.scenario.stop == "undecided":
            return
        self.course = services.course_confirm_hsct(
            self.course,
            hsct_indicated=bool(self.scenario.hsct),
            reason="",
            actor=self.actor,
            now=self.at(day, 17),
        )
        if not self.scenario.hsct:
            referral = self._step("hsct_referral")
            if referral.status == StepStatus.PLANNED:
                services.step_update(
                    referral,
                    data={
                        "status": StepStatus.SKIPPED,
                        "reason": "HSCT not indicated (MRD < 10^-3 at the end of induction).",
                    },
                    actor=self.actor,
                    now=self.at(day, 17),
                )

    def _assessment(self, day: date, *, marrow: str, cr2: bool) -> None:
        services.assessment_record(
            self.course,
            data={"assessed_on": day, "marrow": marrow, "cr2": cr2, "em_status": "none"},
            actor=self.actor,
            now=self.at(day, 15),
        )

    def _mark_done(self, step: Step, day: date) -> None:
        services.step_update(
            self._step(step.id), data={"done_on": day}, actor=self.actor, now=self.at(day, 15)
        )

    def _donor_found(self, day: date, walk: Walk) -> None:
        if (
            "donor_search_slow" in self.scenario.touches
            or "donor_found_late" in self.scenario.touches
        ):
            return
        hsct_key = next(s.id for s in walk.steps if s.kind == StepKind.HSCT)
        services.referral_save(
            self.course,
            data={
                "donor_search_status": "donor_found",
                "donor_type": self.rng.choice(["MSD", "MUD", "MUD", "haplo"]),
                "planned_on": walk.done.get(hsct_key, walk.due[hsct_key]),
            },
            actor=self.actor,
            now=self.at(day, 16),
        )

    # -- endings and follow-up -------------------------------------------------------------

    def _end(self, walk: Walk) -> None:
        ending, day = self.scenario.ending, self._ending_day(walk)
        if ending == "refractory":
            self._move("assess_response", day)
            self._assessment(day, marrow="M3", cr2=False)
            self._move(
                "take_off_protocol",
                day,
                off_protocol_reason="refractory",
                reason="No CR2 after induction (M3 marrow).",
            )
        elif ending == "alternative":
            self._move("assess_response", day)
            self._assessment(day, marrow="M2", cr2=False)
            self._move(
                "take_off_protocol",
                day,
                off_protocol_reason="treatment_failure_alternative_therapy",
                reason="No CR2 (M2 marrow): blinatumomab, then CAR-T, outside the protocol.",
            )
        elif ending == "lost_to_follow_up":
            self._event("lost_to_follow_up", day)
            self._move(
                "take_off_protocol",
                day,
                off_protocol_reason="lost_to_follow_up",
                reason="The family moved abroad; no contact since.",
            )
        else:  # death, second_relapse: the record ends the course (event_record)
            self._event(ending, day)

    def _event(self, kind: str, day: date, contact: str = "") -> None:
        data = {"kind": kind, "occurred_on": day}
        if contact:
            data["contact_status"] = contact
        services.event_record(self.course, data=data, actor=self.actor, now=self.at(day, 13))

    def _closed_on(self) -> date | None:
        last = self.course.transitions.order_by("-on", "-id").first()
        if self.course.state in ACTIVE_STATES or last is None:
            return None
        return last.on

    def _follow_up(self, walk: Walk) -> None:
        """Visits the record shows: on an active course under way for a while, a contact
        every five to eight weeks (the latest within the last month); after the end of
        therapy, every three to five months, and the events the scenario names."""
        self.course.refresh_from_db()
        closed = self._closed_on()
        rng = self.rng
        if closed is None:
            if self.course.state == State.REGISTERED or "stalled" in self.scenario.touches:
                return
            since = self.course.last_clinical_on
            days = []
            day = self.today - timedelta(days=rng.randint(3, 25))
            while since is not None and day > since + timedelta(days=20):
                days.append(day)
                day -= timedelta(days=rng.randint(35, 56))
            for day in sorted(days):
                self._event("follow_up_contact", day, "alive_in_cr")
            return
        events = [(closed + timedelta(days=d), kind) for kind, d in self.scenario.then]
        ends = min((d for d, k in events if k == "death"), default=None)
        if self.scenario.ending == "death":
            ends = closed
        if self.course.state == State.COMPLETED or self.scenario.ending == "alternative":
            day = closed + timedelta(days=rng.randint(80, 120))
            relapsed = min((d for d, k in events if k == "second_relapse"), default=None)
            while day <= self.today and (ends is None or day < ends):
                status = "alive_with_disease" if relapsed and day > relapsed else "alive_in_cr"
                if self.scenario.ending == "alternative":
                    status = "alive_with_disease"
                events.append((day, f"contact:{status}"))
                day += timedelta(days=rng.randint(90, 150))
        for day, kind in sorted(events):
            if day > self.today:
                continue
            if kind.startswith("contact:"):
                self._event("follow_up_contact", day, kind.split(":", 1)[1])
            else:
                self._event(kind, day)

    # -- finishing touches ---------------------------------------------------------------

    def touch_stale_patient(self, walk: Walk) -> None:
        """The front-line end date was corrected (from the discharge letter) after the
        group was confirmed: the decision read it, so it is in doubt."""
        patient = Patient.objects.get(pk=self.course.patient_id)
        day = self.today - timedelta(days=3)
        services.patient_update(
            patient,
            {"frontline_end_date": patient.frontline_end_date - timedelta(days=24)},
            self.at(day, 10),
            actor=self.actor,
        )

    def touch_stale_relapse(self, walk: Walk) -> None:
        """The marrow blast count was corrected (a typing error) after confirmation."""
        relapse = self.course.relapse
        services.relapse_update(
            relapse,
            {"bm_blast_percent": relapse.bm_blast_percent - 7},
            self.at(self.today - timedelta(days=2), 10),
            actor=self.actor,
        )

    def touch_donor_search_slow(self, walk: Walk) -> None:
        """No matched donor yet: the search goes on, MRD is watched while waiting."""
        self._mrd("pre_hsct", self.today - timedelta(days=self.rng.randint(8, 14)), 0.0003)

    def touch_donor_found_late(self, walk: Walk) -> None:
        """A donor was found weeks late: the transplant is planned for next week, with a
        fresh pre-HSCT MRD."""
        day = self.today - timedelta(days=6)
        services.referral_save(
            self.course,
            data={
                "donor_search_status": "donor_found",
                "donor_type": "MUD",
                "planned_on": self.today + timedelta(days=self.rng.randint(7, 12)),
            },
            actor=self.actor,
            now=self.at(day, 12),
        )
        self._mrd("pre_hsct", self.today - timedelta(days=5))

    def touch_stalled(self, walk: Walk) -> None:
        """Nothing recorded for longer than the phase's contact interval (in maintenance
        a visit every few weeks is expected, and course_stalled waits 90 days by
        default): the last visit was one to three weeks more than that ago."""
        interval = self.protocol.alert_days(
            "course_stalled_maintenance_days"
            if self.course.state == State.MAINTENANCE
            else "course_stalled_days"
        )
        self._event(
            "follow_up_contact",
            self.today - timedelta(days=interval + self.rng.randint(5, 20)),
            "alive_in_cr",
        )

    def touch_hsct_review(self, walk: Walk) -> None:
        """The deciding MRD (after F2), negative and confirmed as "no HSCT", is corrected
        two days ago: the lab report reads 5x10^-3. The confirmed decision's basis
        changed, so courses.services.hsct flags it for review."""
        day = self.today - timedelta(days=2)
        self.course.refresh_from_db(fields=["hsct_confirmed_basis"])
        # The sample the confirmed decision rests on, as the decision recorded it.
        deciding = MrdResult.objects.get(
            pk=self.course.hsct_confirmed_basis["sample"]["mrd_result"]
        )
        services.record_amend(
            deciding,
            data={"value": 0.005, "qualitative": "", "unit": "fraction"},
            reason="The lab corrected its report: 5x10^-3, not negative.",
            actor=self.actor,
            now=self.at(day, 10),
        )
        # courses.services.hsct flags the confirmed decision: its deciding sample changed.
        flagged = TreatmentCourse.objects.filter(pk=self.course.pk, hsct_review_since=day)
        assert flagged.exists(), "the amended deciding MRD did not flag the HSCT decision"

    def touch_second_course(self, walk: Walk) -> None:
        """The second relapse is opened as a course of its own: outside both protocols'
        population (a first relapse only), so it waits for a clinician's review."""
        day = self._ending_day(walk)
        patient = Patient.objects.get(pk=self.course.patient_id)
        relapse = services.relapse_create(
            patient=patient,
            data={
                "relapse_date": day,
                "site": "isolated_bm",
                "em_sites": [],
                "bm_blast_percent": float(self.rng.randint(30, 90)),
                # The number follows the first relapse, recorded here. The first course
                # (group B, maintenance) had no transplant, and no record here can say
                # there was none elsewhere: the demo says so.
                "prior_hsct": False,
            },
            now=self.at(day + timedelta(days=2), 10),
        )
        services.course_create(
            relapse=relapse,
            protocol_slug=self.scenario.protocol,
            actor=self.actor,
            now=self.at(day + timedelta(days=2), 10),
        )


# --- the cohort ----------------------------------------------------------------------------


def demo_cohort(
    team: Team,
    *,
    now: datetime,
    actor: AbstractBaseUser,
    seed: int,
    scenarios: Sequence[Scenario] = SCENARIOS,
    limit: int | None = None,
) -> int:
    """Write the demo scenarios for ``team`` as of ``now`` (in one transaction: all or
    nothing) and return the number of courses written. A team that already has demo
    patients gets nothing (loading the demo again changes nothing)."""
    if Patient.objects.filter(team=team, reference__startswith=REFERENCE_PREFIX).exists():
        return 0
    chosen = list(scenarios)[: limit if limit is not None else None]
    # Every service announces its course; the sweep after the load covers them all.
    with reevaluation_held_back(), transaction.atomic():
        for index, scenario in enumerate(chosen):
            _Course(team, scenario, index, now=now, actor=actor, seed=seed).write()
    return TreatmentCourse.objects.filter(
        patient__team=team, patient__reference__startswith=REFERENCE_PREFIX
    ).count()


def scenario_of(course: TreatmentCourse) -> Scenario | None:
    """The scenario a demo course was written for (by its patient's reference)."""
    ref = course.patient.reference
    if not ref.startswith(REFERENCE_PREFIX):
        return None
    index = int(ref.removeprefix(REFERENCE_PREFIX)) - 1
    return SCENARIOS[index] if 0 <= index < len(SCENARIOS) else None
