from typing import Any

from django import template

from ebr.units import duration_display, unit_display

register = template.Library()


@register.filter
def dict_get(mapping: dict[Any, Any], key: Any) -> Any:
    return mapping.get(key)


@register.filter
def unit(code: str | None) -> str:
    """The unit next to a value (ebr/units.py): a pure number ("1") shows none."""
    return unit_display(code)


@register.filter
def duration(span: Any) -> str:
    """'12 h' rather than '12:00:00' (ebr/units.py)."""
    return duration_display(span)
