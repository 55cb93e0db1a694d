"""Page addresses of quality records, for notifications and e-mails."""

from __future__ import annotations

from django.urls import NoReverseMatch, reverse

_DETAIL_PAGES = {"deviation": "deviation_detail", "capa": "capa_detail", "change_control": "change_control_detail"}


def record_link(kind: str, number: str) -> str:
    try:
        return reverse(_DETAIL_PAGES[kind], args=[number])
    except NoReverseMatch:
        return ""


def page_link(url_name: str) -> str:
    try:
        return reverse(url_name)
    except NoReverseMatch:
        return ""
