"""Units and durations as shown to people.

Units are stored and exchanged as UCUM codes (Cel, 10*6/mL, [pH]): the instrument API, the
audit trail, the CSV and the record fingerprint keep them, because a code is unambiguous to a
machine. People read the printed symbols instead: an operator in the cleanroom or a QP
reading the PDF should see "37 °C" and "2.1 ×10⁶/mL", not "37 Cel" and "2.1 10*6/mL"
(EU GMP Chapter 4.7: entries clear and legible). The symbol is derived from the code by
UCUM's own rules, so a unit a facility adds to its registry reads right without a table
entry. UCUM's "1", a pure number (a count, a ratio), shows nothing: nobody writes "5 1".
Durations read "12 h", not "12:00:00".
"""

from __future__ import annotations

import re
from datetime import timedelta

DIMENSIONLESS = "1"

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
# Codes whose printed symbol is not the code with brackets and braces taken off.
_SYMBOLS = {"[degF]": "°F", "[pH]": "pH", "mm[Hg]": "mmHg", "[ppm]": "ppm", "[ppb]": "ppb"}
_CELSIUS = re.compile(r"(?<![A-Za-z])Cel(?![A-Za-z])")
_POWER_OF_TEN = re.compile(r"10\*(-?\d+)|10\^(-?\d+)")
# UCUM writes the micro prefix as "u"; only before a unit it can prefix (ug, uL, umol, um, us).
_MICRO = re.compile(r"(?<![A-Za-z])u(?=(?:g|L|l|mol|m|s|kat)(?![A-Za-z]))")
_ANNOTATION = re.compile(r"\{([^{}]*)\}")
_EXPONENT = re.compile(r"(?<=[A-Za-z])(-?\d+)(?![\d*^])")


def unit_display(code: str | None) -> str:
    """The unit as printed next to a value, from its UCUM code: "Cel" → "°C", "10*6/mL" →
    "×10⁶/mL", "[EU]/mL" → "EU/mL", "{copies}/cell" → "copies/cell", "/m3" → "/m³",
    "ug" → "µg"; nothing for a pure number ("1")."""
    if not code or code == DIMENSIONLESS:
        return ""
    shown = _CELSIUS.sub("°C", code)
    for ucum, symbol in _SYMBOLS.items():
        shown = shown.replace(ucum, symbol)
    shown = _EXPONENT.sub(lambda m: m.group(1).translate(_SUPERSCRIPT), shown)
    shown = _POWER_OF_TEN.sub(lambda m: "×10" + (m.group(1) or m.group(2)).translate(_SUPERSCRIPT), shown)
    # An annotation right after a number or power names what is counted: 10*6{cells} reads "10⁶ cells".
    shown = _ANNOTATION.sub(lambda m: (" " if m.start() and shown[m.start() - 1] not in "/. " else "") + m.group(1),
                            shown)
    shown = _MICRO.sub("µ", shown)
    return shown.replace("[", "").replace("]", "").replace(".", "·")


def unit_typed_matches(typed: str, code: str) -> bool:
    """Whether what an operator typed after a value names the parameter's unit: its UCUM code
    or its printed symbol ("37 Cel" and "37 °C" both say degrees Celsius)."""
    return typed in {code, unit_display(code)}


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
