"""How an MRD number reads to a clinician: in both units at once.

MRD is stored as a fraction of cells (courses.models.MrdResult) and typed as a fraction
or in percent (flow cytometry reports percent: 0.1 % = 10^-3). A value read back in one
unit only is how a tenfold slip goes unnoticed, so every echo of a stored value (the web
app's save message and record list, the API's ``value_display``) says both:
``2×10⁻³ = 0.2 %``.
"""

from __future__ import annotations

from decimal import Decimal

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _plain(number: Decimal) -> str:
    """``number`` without exponent or trailing zeros (1E-4 -> "0.0001", 1E+2 -> "100")."""
    return format(number.normalize(), "f")


def fraction_display(fraction: float | None) -> str:
    """A fraction of cells in powers of ten and in percent: 0.002 -> "2×10⁻³ = 0.2 %".
    Twelve significant digits, as stored (records._as_fraction); "" for none."""
    if fraction is None:
        return ""
    mantissa, exponent = f"{fraction:.11e}".split("e")
    power = int(exponent)
    digits = _plain(Decimal(mantissa))
    scientific = digits if power == 0 else f"{digits}×10{str(power).translate(_SUPERSCRIPT)}"
    percent = _plain(Decimal(f"{fraction:.12g}") * 100)
    return f"{scientific} = {percent} %"
