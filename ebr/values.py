"""Turning what an operator typed or scanned into a checked value: type, unit, limits.

Pure functions over a ParameterSpec-like object, so forms, services and the API share them.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.dateparse import parse_datetime

from ebr.units import unit_display, unit_typed_matches

YES = {"yes", "y", "oui", "true", "1"}
NO = {"no", "n", "non", "false", "0"}
_NUMBER = re.compile(r"^\s*([-+]?\d+(?:[.,]\d+)?(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


class ValueRefused(ValueError):
    """The value cannot be recorded as typed; the message tells the operator what to do."""


@dataclass(frozen=True)
class CheckedValue:
    text: str
    number: Decimal | None
    unit: str
    in_spec: bool | None
    alert: bool


def _number(raw: str, unit: str) -> tuple[Decimal, str]:
    match = _NUMBER.match(raw)
    if not match:
        raise ValueRefused("Enter a number, e.g. 7.2 (a unit is optional).")
    if re.fullmatch(r"[-+]?\d{1,3},\d{3}", match.group(1)):
        # "1,000": a thousand to one reader, one to another (decimal comma). Never guess a value.
        raise ValueRefused(f"{match.group(1)} is ambiguous (a thousand, or one with a decimal comma?): type it "
                           "without a thousands separator, with a point for decimals, e.g. 1000 or 1.000.")
    typed_unit = match.group(2)
    if typed_unit and not unit_typed_matches(typed_unit, unit):
        raise ValueRefused(f"The unit must be {unit_display(unit) or 'none'}, not {typed_unit}.")
    try:
        number = Decimal(match.group(1).replace(",", "."))
    except InvalidOperation as error:
        raise ValueRefused("Enter a number, e.g. 7.2.") from error
    if not number.is_finite() or abs(number) >= Decimal("1e12"):
        raise ValueRefused("The number is out of range.")
    return number, unit


def _within(number: Decimal, low: Decimal | None, high: Decimal | None) -> bool:
    return (low is None or number >= low) and (high is None or number <= high)


def value_check(parameter: Any, raw: str) -> CheckedValue:
    """Parse and judge a value for `parameter` (kinds: number, text, choice, yes_no, datetime)."""
    raw = (raw or "").strip()
    if not raw:
        raise ValueRefused("A value is required.")
    kind = parameter.kind
    if kind in {"number", "calculated"}:
        number, unit = _number(raw, parameter.unit)
        has_spec = parameter.lower_limit is not None or parameter.upper_limit is not None
        in_spec = _within(number, parameter.lower_limit, parameter.upper_limit) if has_spec else None
        alert = not _within(number, parameter.alert_low, parameter.alert_high)
        return CheckedValue(format(number.normalize(), "f"), number, unit, in_spec, alert and in_spec is not False)
    if kind == "yes_no":
        answer = raw.lower()
        if answer not in YES | NO:
            raise ValueRefused("Answer yes or no.")
        text = "yes" if answer in YES else "no"
        return CheckedValue(text, None, "", (text == parameter.expected) if parameter.expected else None, False)
    if kind == "choice":
        if raw not in parameter.choices:
            raise ValueRefused(f"Choose one of: {', '.join(parameter.choices)}.")
        return CheckedValue(raw, None, "", (raw == parameter.expected) if parameter.expected else None, False)
    if kind == "datetime":
        moment = parse_datetime(raw)
        if moment is None:
            raise ValueRefused("Enter a date and time, e.g. 2026-11-27 09:30.")
        return CheckedValue(moment.isoformat(), None, "", None, False)
    if len(raw) > 500:
        raise ValueRefused("The text is too long (500 characters at most).")
    return CheckedValue(raw, None, "", None, False)


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def formula_evaluate(formula: str, values: dict[str, Decimal]) -> Decimal:
    """Evaluate a master record formula (+ - * / over parameter codes and numbers), no eval()."""

    def walk(node: ast.AST) -> Decimal:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return Decimal(str(node.value))
        if isinstance(node, ast.Name):
            if node.id not in values:
                raise ValueRefused(f"The calculation needs {node.id}, which is not recorded yet.")
            return values[node.id]
        raise ValueRefused(f"Unsupported calculation: {formula}")

    try:
        return walk(ast.parse(formula, mode="eval"))
    except (SyntaxError, ZeroDivisionError, InvalidOperation) as error:
        raise ValueRefused(f"The calculation {formula} cannot be evaluated: {error}") from error


def aware(moment: datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() is not None
