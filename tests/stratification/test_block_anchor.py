"""The protocol's block-anchored days: the end of induction (from then on CR2 is
judged) and the window a deciding MRD sample must fall in follow the blocks as
recorded, not the plan."""

from datetime import date

from stratification.selectors import protocol_get


def test_bfm2002_end_of_induction_is_five_days_after_the_start_of_f2():
    anchor = protocol_get("all-rez-bfm-2002").end_of_induction
    blocks = [("F1", date(2026, 3, 2)), ("F2", date(2026, 3, 27))]
    assert anchor.day(blocks) == date(2026, 4, 1)
    assert anchor.words == "the start of block F2 + 5 days"
    assert anchor.block == "block F2"


def test_bfm2002_end_of_induction_is_unknown_while_f2_is_not_recorded():
    anchor = protocol_get("all-rez-bfm-2002").end_of_induction
    assert anchor.day([("F1", date(2026, 3, 2))]) is None


def test_bfm90_end_of_induction_counts_from_the_second_block_whatever_its_type():
    anchor = protocol_get("all-rez-bfm-90").end_of_induction
    blocks = [("R1", date(2026, 2, 23)), ("R2", date(2026, 1, 30))]  # entered out of order
    assert anchor.day(blocks) == date(2026, 2, 28)
    assert anchor.words == "the start of the 2nd block + 5 days"
    assert anchor.block == "the 2nd block"


def test_the_s2_deciding_window_opens_after_f2():
    window = protocol_get("all-rez-bfm-2002").hsct_indication["S2"].deciding_window
    assert window.day([("F1", date(2026, 3, 2)), ("F2", date(2026, 3, 24))]) == date(2026, 3, 29)
