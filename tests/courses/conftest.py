from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest
from django.utils import timezone

from tests.conftest import induction_blocks


@pytest.fixture(autouse=True)
def frozen_time(time_machine: Any) -> datetime:
    time_machine.move_to(datetime.fromisoformat("2026-11-24T10:00:00+00:00"), tick=False)
    return timezone.now()


@pytest.fixture
def s2_course(team: Any, clinician: Any, make_course: Callable[..., Any]) -> Any:
    """A late isolated marrow relapse of BCP-ALL: S2 under ALL-REZ BFM 2002, its HSCT
    indication waiting for MRD at the end of induction."""
    # Induction given: F1 and F2, so an end-of-induction sample from 2026-11-01 on
    # (after F2, the protocol's deciding window) decides.
    course = make_course(
        team,
        clinician,
        protocol="all-rez-bfm-2002",
        relapse_date=date(2024, 9, 1),
        blocks=induction_blocks(date(2026, 10, 6), "all-rez-bfm-2002"),
    )
    assert (course.risk_group, course.hsct_indicated) == ("S2", None)
    return course
