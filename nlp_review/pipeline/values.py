"""Value-versus-limit extraction: "viability 61% (limit ≥70%)" is out of specification,
"viability 92%" is not (no limit stated: the structured check compares it with the master record).

Within one clause, a limit is a number introduced by a comparator or a limit word
("≥70%", "limit <0.5", "minimum of 1.0 x10^6", "NLT 70%", "range 7.0-7.4", "(7.0-7.4)"); the
measured value is the nearest number before it (not a step, bag, day or lot number). A limit word
with no direction ("limit of 0.5") takes the parameter's usual direction (endotoxin: a maximum;
viability: a minimum). Without a parameter and a direction, nothing is decided.
Numbers written 7.2e6, 1.5x10^6 or "1.0 x10^6" are compared on the same scale.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

NUMBER_RE = re.compile(
    r"^(?P<num>[+\-−]?\d+(?:[.,]\d+)?)(?:(?:[eE](?P<e>[+\-]?\d+))|(?:[xX×]10(?:\^|e|E)?(?P<x>[+\-]?\d+)))?"
    r"(?:/\S+)?$")
MAX_POWER = 30
THOUSANDS_RE = re.compile(r"[+\-]?\d{1,3},\d{3}")  # 1,000 is a thousand; 0,5 is a half
# "x10^6", "x10e6", "e6", and "10^6" after a separate "x" ("1.2 x 10^6"); superscripts are read as digits.
MULTIPLIER_RE = re.compile(r"^(?:[xX×]10(?:\^|e|E)?(?P<x>[+\-]?\d+)|[eE](?P<e>[+\-]?\d+)|10\^(?P<p>[+\-]?\d+))"
                           r"(?:/\S*)?$")
TIMES = frozenset({"x", "X", "×", "*"})
SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻", "0123456789+-")
# UCUM writes powers of ten as 10*6 (the unit of cell counts, "10*6/mL"): tokens "10", "*", "6".
UCUM_POWER_RE = re.compile(r"^(?P<p>[+\-]?\d{1,2})(?:/\S*)?$")


def _ucum_power(words: Sequence[str], i: int) -> int | None:
    """The power of a UCUM "10*N" starting at token i ("10", "*", "N" or "N/mL"), if there is one."""
    if i + 2 < len(words) and words[i] == "10" and words[i + 1] == "*":
        match = UCUM_POWER_RE.match(words[i + 2])
        if match and abs(int(match.group("p"))) <= MAX_POWER:
            return int(match.group("p"))
    return None


def _plain(text: str) -> str:
    """Superscript powers as plain ones: "1.5×10⁶" -> "1.5×10^6"."""
    if not any(ch in "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻" for ch in text):
        return text
    head = text.rstrip("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻")
    tail = text[len(head):]
    if not tail:  # superscripts inside, e.g. before a unit: "10⁶/kg"
        for i, ch in enumerate(text):
            if ch in "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻":
                end = i
                while end < len(text) and text[end] in "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻":
                    end += 1
                return text[:i] + "^" + text[i:end].translate(SUPERSCRIPTS) + text[end:]
        return text
    return head + "^" + tail.translate(SUPERSCRIPTS)


def _power(match: re.Match[str]) -> int | None:
    power = _small_power(match.group("x") or match.group("e") or match.groupdict().get("p"))
    return None if power is False else power


def _small_power(raw: str | None) -> int | bool | None:
    """The power of ten written `raw`, None if there is none, False if it is no measurement's
    (beyond MAX_POWER; thousands of digits are refused before int() has to read them)."""
    if raw is None:
        return None
    if len(raw.lstrip("+-−0")) > len(str(MAX_POWER)):
        return False
    power = int(raw.replace("−", "-"))
    return False if abs(power) > MAX_POWER else power


class Bound(StrEnum):
    MIN = "min"  # value must be >= limit
    MIN_STRICT = "min_strict"  # value must be > limit
    MAX = "max"  # value must be <= limit
    MAX_STRICT = "max_strict"  # value must be < limit
    RANGE = "range"
    UNKNOWN = "unknown"


COMPARATORS = {">=": Bound.MIN, "≥": Bound.MIN, "⩾": Bound.MIN, "=>": Bound.MIN, ">": Bound.MIN_STRICT,
               "<=": Bound.MAX, "≤": Bound.MAX, "⩽": Bound.MAX, "=<": Bound.MAX, "<": Bound.MAX_STRICT}
DIRECTION_WORDS = {"min": Bound.MIN, "minimum": Bound.MIN, "lsl": Bound.MIN, "nlt": Bound.MIN, "lower": Bound.MIN,
                   "least": Bound.MIN, "max": Bound.MAX, "maximum": Bound.MAX, "usl": Bound.MAX, "nmt": Bound.MAX,
                   "upper": Bound.MAX, "most": Bound.MAX}
LIMIT_WORDS = frozenset({"limit", "limits", "spec", "specification", "specifications", "acceptance", "criterion",
                         "criteria", "target", "range", "lim", "required", "requirement", "expected", "allowed",
                         "acceptable", "between", "outside", "within", "threshold", "(", "should", "must", "vs",
                         "versus", "against", "cut-off", "cutoff", "tolerance", "specs", "spec."}
                        | set(DIRECTION_WORDS))
RANGE_JOINERS = frozenset({"-", "–", "—", "to"})
NUMBER_STARTS = frozenset("0123456789+-−")
NOT_A_MEASUREMENT = frozenset({"step", "steps", "bag", "bags", "flask", "flasks", "day", "d", "p", "p.", "page", "lot",
                               "batch", "#", "no", "no.", "number", "version", "v", "x", "ratio", "sop", "position",
                               "bsc", "room", "suite", "grade", "passage", "tube", "tubes", "vial", "vials"})
UNIT_WORDS = frozenset({"%", "°C", "°F", "C", "mL", "ml", "L", "min", "h", "g", "cfu", "CFU", "copies", "cells"})
CLAUSE_ENDS = frozenset({".", ";", "!", "?", "\n", "but", "however", "whereas"})
LOOKBACK_ENDS = frozenset({".", ";", "\n"})  # a limit clause may refer to the value just before these

# Parameter word -> (name, usual direction, release parameter?). Release parameters are critical
# when out of limit (specs: "a release specification").
PARAMETERS: dict[str, tuple[str, Bound, bool]] = {
    "viability": ("viability", Bound.MIN, True),
    "cd3": ("CD3+", Bound.MIN, True), "cd3+": ("CD3+", Bound.MIN, True), "purity": ("purity", Bound.MIN, True),
    "vcn": ("VCN", Bound.MAX, True), "copy": ("VCN", Bound.MAX, True), "copies": ("VCN", Bound.MAX, True),
    "transduction": ("transduction", Bound.MIN, True), "te": ("transduction", Bound.MIN, True),
    "dose": ("dose", Bound.MIN, True), "potency": ("potency", Bound.MIN, True),
    "endotoxin": ("endotoxin", Bound.MAX, True), "car": ("CAR expression", Bound.MIN, True),
    "car+": ("CAR expression", Bound.MIN, True), "tnc": ("cell dose", Bound.MIN, True),
    "vcd": ("VCD", Bound.MIN, False), "density": ("cell density", Bound.MIN, False),
    "count": ("cell count", Bound.MIN, False), "cells": ("cell count", Bound.MIN, False),
    "glucose": ("glucose", Bound.MIN, False), "glc": ("glucose", Bound.MIN, False),
    "lactate": ("lactate", Bound.MAX, False), "lac": ("lactate", Bound.MAX, False),
    "ammonia": ("ammonia", Bound.MAX, False), "ammonium": ("ammonia", Bound.MAX, False),
    "osmolality": ("osmolality", Bound.RANGE, False), "ph": ("pH", Bound.RANGE, False),
    "temperature": ("temperature", Bound.RANGE, False), "co2": ("CO2", Bound.RANGE, False),
    "expansion": ("fold expansion", Bound.MIN, False), "yield": ("yield", Bound.MIN, False),
    "recovery": ("recovery", Bound.MIN, False),
}


@dataclass(frozen=True, slots=True)
class Limit:
    start: int
    end: int  # token indices, end exclusive
    bound: Bound
    low: float | None = None
    high: float | None = None
    multiplier: int | None = None


@dataclass(frozen=True, slots=True)
class ValueCheck:
    """A stated value compared with a stated limit. Token indices; `release` marks a release parameter."""

    start: int
    end: int
    parameter: str
    value: float
    limit: Limit
    in_spec: bool
    release: bool

    def describe(self) -> str:
        low, high = self.limit.low or 0.0, self.limit.high or 0.0
        shown = {Bound.MIN: f"≥{low:g}", Bound.MIN_STRICT: f">{low:g}", Bound.MAX: f"≤{high:g}",
                 Bound.MAX_STRICT: f"<{high:g}", Bound.RANGE: f"{low:g}–{high:g}"}.get(self.limit.bound, "?")
        verdict = "within" if self.in_spec else "outside"
        return f"{self.parameter} {self.value:g} is {verdict} the stated limit {shown}"


def parse_number(text: str) -> tuple[float, int | None] | None:
    """(mantissa, power of ten or None) for a number token, or None."""
    match = NUMBER_RE.match(_plain(text))
    if not match:
        return None
    raw = match.group("num").replace("−", "-")
    raw = raw.replace(",", "") if THOUSANDS_RE.fullmatch(raw) else raw.replace(",", ".")
    power = _small_power(match.group("e") or match.group("x"))
    if power is False:
        return None  # "1e999" is not a measurement
    return float(raw), power


def _number_at(words: Sequence[str], i: int) -> tuple[float, int | None, int] | None:
    """The number starting at token i: (mantissa, power, index after it), joining a separate "x10^6"."""
    if i >= len(words):
        return None
    parsed = parse_number(words[i])
    if parsed is None:
        return None
    value, power = parsed
    after = i + 1
    if power is None and (ucum := _ucum_power(words, after)) is not None:  # "600 10*6": 600 x 10^6
        return value, ucum, after + 3
    if power is None and after < len(words):
        if words[after] in TIMES and after + 1 < len(words):  # "1.2 x 10^6"
            spaced = MULTIPLIER_RE.match(_plain(words[after + 1]))
            spaced_power = _small_power(spaced.group("p")) if spaced else None
            if spaced_power is not None and spaced_power is not False:
                return value, spaced_power, after + 2
        multiplier = MULTIPLIER_RE.match(_plain(words[after]))
        exponent = _power(multiplier) if multiplier else None
        if exponent is not None and abs(exponent) <= MAX_POWER:
            power = exponent
            after += 1
    return value, power, after


def _limit_at(words: Sequence[str], norms: Sequence[str], i: int, cue: bool) -> Limit | None:
    """A limit expression starting at token i, if there is one: a comparator or a limit word must introduce it
    ("door open >60 s" is a measurement, "(limit >60)" a limit)."""
    bound: Bound | None = COMPARATORS.get(words[i]) if cue else None
    j = i + 1 if bound else i
    if bound is None and norms[i] in ("not", "no") and i + 2 < len(norms) and norms[i + 2] == "than":
        bound = Bound.MIN if norms[i + 1] in ("less", "fewer", "lower") else Bound.MAX
        j = i + 3
    number = _number_at(words, j)
    if number is None:
        return None
    low, power, after = number
    if after + 1 < len(words) and norms[after] in RANGE_JOINERS and bound is None:
        high = _number_at(words, after + 1)
        if high is not None and high[0] >= low and (cue or _range_word_follows(norms, high[2])):
            return Limit(i, high[2], Bound.RANGE, low, high[0], power if power is not None else high[1])
    if bound is None:
        if not cue:
            return None
        bound = Bound.UNKNOWN
    is_min = bound in (Bound.MIN, Bound.MIN_STRICT)
    return Limit(i, after, bound, low if is_min or bound is Bound.UNKNOWN else None,
                 None if is_min else low, power)


def _range_word_follows(norms: Sequence[str], i: int) -> bool:
    return any(n in ("range", "limits", "limit") for n in norms[i:i + 3])


def _cue_before(norms: Sequence[str], i: int, floor: int) -> Bound | bool | None:
    """A limit word in the 3 tokens before i: its direction if it has one, else True; False if none."""
    found: Bound | bool | None = False
    for k in range(i - 1, max(floor, i - 4) - 1, -1):
        norm = norms[k]
        if norm in DIRECTION_WORDS:
            return DIRECTION_WORDS[norm]
        if norm in LIMIT_WORDS:
            found = True
    return found


def _scaled(value: float, power: int | None, reference: int | None) -> float:
    return value * 10 ** (power if power is not None else (reference or 0))


def _parameter(norms: Sequence[str], start: int, floor: int,
               limit_end: int) -> tuple[int, tuple[str, Bound, bool]] | None:
    """The parameter named just before the value, or else between it and the limit ("... minimum dose of")."""
    for k in range(start - 1, max(floor, start - 7) - 1, -1):
        if norms[k] in PARAMETERS:
            return k, PARAMETERS[norms[k]]
    for k in range(start + 1, limit_end):
        if norms[k] in PARAMETERS and PARAMETERS[norms[k]][2]:
            return start, PARAMETERS[norms[k]]
    return None


def _measured(words: Sequence[str], norms: Sequence[str], limit_start: int, floor: int) -> tuple[int, int] | None:
    """Token span of the measured value: the nearest number before the limit in the clause."""
    for k in range(limit_start - 1, floor - 1, -1):
        if parse_number(words[k]) is None or MULTIPLIER_RE.match(_plain(words[k])):
            continue
        if _ucum_power(words, k) is not None or (k >= 2 and _ucum_power(words, k - 2) is not None):
            continue  # the "10" or the "6" of a unit 10*6, not a measurement
        if k > floor and words[k - 1] in TIMES and k - 1 > floor and parse_number(words[k - 2]) is not None:
            continue  # the "10^6" of "1.2 x 10^6"
        if k > floor and norms[k - 1] in NOT_A_MEASUREMENT:
            continue
        if k - 1 > floor and norms[k - 1] in RANGE_JOINERS and parse_number(words[k - 2]) is not None:
            continue  # the upper end of a range, not a measurement
        start = k - 1 if k > floor and words[k - 1] in COMPARATORS else k
        return start, k
    return None


def _in_spec(value: float, limit: Limit, low: float | None, high: float | None, measured_op: str | None) -> bool:
    bound = limit.bound
    if measured_op in ("<", "≤", "<=") and bound in (Bound.MAX, Bound.MAX_STRICT) and high is not None:
        return value <= high  # "<0.05" against a maximum of 0.5
    checks = {
        Bound.MIN: lambda: low is not None and value >= low,
        Bound.MIN_STRICT: lambda: low is not None and value > low,
        Bound.MAX: lambda: high is not None and value <= high,
        Bound.MAX_STRICT: lambda: high is not None and value < high,
        Bound.RANGE: lambda: low is not None and high is not None and low <= value <= high,
    }
    return checks[bound]()


def check_values(words: Sequence[str], norms: Sequence[str]) -> list[ValueCheck]:
    """Every stated value with a stated limit in the text (token texts and NORMs of one doc)."""
    checks: list[ValueCheck] = []
    candidates = [i for i, word in enumerate(words)  # where a limit can start: a comparator, "not less than", a number
                  if word[:1] in NUMBER_STARTS or word in COMPARATORS or norms[i] in ("not", "no")]
    if len(candidates) < 2:  # a value and a limit, at least
        return checks
    floors, floor = [], 0
    for i, norm in enumerate(norms):  # the first token of each token's clause
        floors.append(floor)
        if norm in CLAUSE_ENDS:
            floor = i + 1
    resume = 0
    for i in candidates:
        if i < resume or norms[i] in CLAUSE_ENDS:
            continue
        floor = floors[i]
        cue = _cue_before(norms, i, floor)
        if cue is False and not (i + 1 < len(norms) and norms[i + 1] in RANGE_JOINERS):
            continue  # no limit word before it and no range: a measurement, not a limit
        limit = _limit_at(words, norms, i, cue is not False)
        if limit is None:
            continue
        check = _compare(words, norms, limit, cue, floor)
        if check is None and floor > 1 and norms[floor - 1] in LOOKBACK_ENDS and _no_number(words, floor, i):
            # "CD3+ purity 71%; the limit is ≥ 90%": a limit stated on its own after the value.
            check = _compare(words, norms, limit, cue, floors[floor - 1])
        if check is not None:
            checks.append(check)
        resume = limit.end
    return checks


def _no_number(words: Sequence[str], start: int, end: int) -> bool:
    return all(parse_number(words[k]) is None for k in range(start, end))


def _compare(words: Sequence[str], norms: Sequence[str], limit: Limit, cue: Bound | bool | None,
             floor: int) -> ValueCheck | None:
    measured = _measured(words, norms, limit.start, floor)
    if measured is None:
        return None
    op_start, number_index = measured
    number = _number_at(words, number_index)
    if number is None:
        return None
    value, power, _ = number
    found = _parameter(norms, op_start, floor, limit.end)
    name, usual, release = found[1] if found else ("value", Bound.UNKNOWN, False)
    bound = limit.bound
    if bound is Bound.UNKNOWN:
        bound = cue if isinstance(cue, Bound) else usual
        if bound in (Bound.UNKNOWN, Bound.RANGE):
            return None
        value_limit = limit.low
        limit = Limit(limit.start, limit.end, bound, value_limit if bound is Bound.MIN else None,
                      value_limit if bound is Bound.MAX else None, limit.multiplier)
    reference = power if power is not None else limit.multiplier
    scaled = _scaled(value, power, reference)
    low = None if limit.low is None else _scaled(limit.low, limit.multiplier, reference)
    high = None if limit.high is None else _scaled(limit.high, limit.multiplier, reference)
    measured_op = words[op_start] if op_start != number_index else None
    in_spec = _in_spec(scaled, limit, low, high, measured_op)
    start = found[0] if found else op_start
    end = limit.end
    while end < len(words) and end < limit.end + 2 and (words[end] in UNIT_WORDS or "/" in words[end]):
        end += 1
    end = end + 1 if end < len(words) and words[end] == ")" else end
    return ValueCheck(start, end, name, value, limit, in_spec, release)
