"""Units and durations as shown to people.

Units are stored, exchanged and shown as UCUM codes (Cel, 10*6/mL, [pH]) throughout, so the
screen, the PDF and instrument data read alike. The one exception is UCUM's "1", a pure number
(a count, a ratio): nobody writes "5 1" or "Value (1)". Durations read "12 h", not "12:00:00".
"""

from __future__ import annotations

from datetime import timedelta

DIMENSIONLESS = "1"


def unit_display(code: str | None) -> str:
    """The unit as shown next to a value: the UCUM code, or nothing for a pure number."""
    if not code or code == DIMENSIONLESS:
        return ""
    return code


def duration_display(span: timedelta | None) -> str:
    """A duration as people say it: '12 h', '1 h 05 min', '2 d 3 h', '45 min' (str() of a
    timedelta gives '12:00:00', which reads as a time of day)."""
    if span is None:
        return ""
    seconds = int(span.total_seconds())
    sign, seconds = ("−", -seconds) if seconds < 0 else ("", seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        parts = [f"{days} d", f"{hours} h" if hours else ""]
    elif hours:
        parts = [f"{hours} h", f"{minutes:02d} min" if minutes else ""]
    elif minutes:
        parts = [f"{minutes} min"]
    else:
        parts = [f"{seconds} s"]
    return sign + " ".join(part for part in parts if part)
