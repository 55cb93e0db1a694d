"""What every quality-system screen shares: errors onto forms, CSV export, paging, sorting."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from qms.audit import Event, ReasonRequired, record_event
from qms.forms import errors_onto
from qms.signatures import username_required

PAGE_SIZE = 50


def run_service(form: forms.Form, call: Callable[[dict[str, Any]], Any]) -> Any:
    """Call the service with the form's data; on refusal, show why on the form and return None.

    Nothing is half-saved: each service runs in its own transaction, which a refusal rolls back.
    """
    if not form.is_valid():
        return None
    try:
        return call(form.cleaned_data) or True
    except ValidationError as error:
        errors_onto(form, error)
    except (PermissionDenied, PermissionError, ReasonRequired) as error:
        form.add_error(None, str(error))
    return None


def signed_kwargs(request: HttpRequest, form: Any) -> dict[str, Any]:
    return {**form.signing(), "session": request.session, "request": request}


def needs_username(request: HttpRequest) -> bool:
    return username_required(request.session)


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet would run as a formula is prefixed with ' (OWASP CSV injection): every
    export carries free text typed by users (titles, reasons, comments)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


def csv_response(request: HttpRequest, *, name: str, header: list[str], rows: Iterable[list[Any]], count: int,
                 filters: dict[str, Any], label: str | None = None) -> StreamingHttpResponse:
    """Stream a CSV export, every cell guarded against formula injection; taking records out is
    itself recorded (who, which, how many)."""
    record_event(actor=request.user, event=Event.EXPORT_CREATED, target_label=f"{label or name} (CSV)",
                 data={"filters": {k: str(v) for k, v in filters.items() if v}, "rows": count, "format": "csv"})
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([csv_cell(cell) for cell in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    return response


def page_of(request: HttpRequest, records: QuerySet[Any]) -> Page:
    return Paginator(records, PAGE_SIZE).get_page(request.GET.get("page"))


def wants_csv(request: HttpRequest) -> bool:
    return request.GET.get("format") == "csv"
