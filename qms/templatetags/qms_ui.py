"""Template helpers of the quality-system lists."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html

register = template.Library()


@register.simple_tag(takes_context=True)
def sort_th(context: dict[str, Any], key: str, label: str) -> str:
    """A column heading that sorts the list by `key`, toggling the direction, keeping the filters."""
    request = context["request"]
    current = request.GET.get("sort", context.get("default_sort", ""))
    query = request.GET.copy()
    query.pop("page", None)
    query["sort"] = f"-{key}" if current == key else key
    arrow = " ▲" if current == key else " ▼" if current == f"-{key}" else ""
    aria = "ascending" if current == key else "descending" if current == f"-{key}" else "none"
    return format_html('<th aria-sort="{}"><a class="sort" href="?{}">{}{}</a></th>', aria, query.urlencode(),
                       label, arrow)


@register.simple_tag(takes_context=True)
def page_query(context: dict[str, Any], page: int) -> str:
    query = context["request"].GET.copy()
    query["page"] = page
    return query.urlencode()


@register.simple_tag(takes_context=True)
def csv_query(context: dict[str, Any]) -> str:
    query = context["request"].GET.copy()
    query.pop("page", None)
    query["format"] = "csv"
    return query.urlencode()


@register.filter
def event_words(code: str) -> str:
    from qms.audit.display import event_label

    return event_label(code)


@register.filter
def get_item(mapping: dict[Any, Any], key: Any) -> Any:
    return mapping.get(key) if mapping else None
