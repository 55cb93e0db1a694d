"""Signed PDF export from the batch page: request, follow progress (HTMX polling), download.

QA and auditors (Capability.AUDIT_TRAIL_EXPORT) ask for the record; the work runs in Celery
(ebr.batch_pdf_export, queued through the outbox after commit), the panel polls the PdfExport
row while it is in flight, and the finished file is served only to the person who asked for
it and only while its SHA-256 matches the one recorded with the export (21 CFR 11.10(b) copies,
11.10(d) access limited to authorised people; EU GMP Annex 11 §8.1).
"""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from ebr.models import Batch, PdfExport
from ebr.pdf.export import export_file, pdf_export_request
from qms.models import User
from qms.permissions import capability_required
from qms.roles import Capability, can

PANEL_EXPORTS = 5


def _user(request: HttpRequest) -> User:
    """The logged-in user (login is required by middleware; the capability checks ran before)."""
    assert isinstance(request.user, User)
    return request.user


def _panel(request: HttpRequest, batch: Batch, status: int = 200) -> HttpResponse:
    exports = list(PdfExport.objects.filter(batch=batch, requested_by=_user(request))[:PANEL_EXPORTS])
    return render(request, "ebr/_pdf_export.html", {
        "batch": batch, "pdf_panel": True, "exports": exports,
        "polling": any(export.in_flight for export in exports),
    }, status=status)


@require_GET
def batch_pdf_panel(request: HttpRequest, number: str) -> HttpResponse:
    """The export panel of the batch page; nothing (204) for people who may not export."""
    if not can(request.user, Capability.AUDIT_TRAIL_EXPORT):
        return HttpResponse(status=204)
    return _panel(request, get_object_or_404(Batch, number=number))


@require_POST
@capability_required(Capability.AUDIT_TRAIL_EXPORT)
def batch_pdf_request(request: HttpRequest, number: str) -> HttpResponse:
    batch = get_object_or_404(Batch, number=number)
    pdf_export_request(actor=_user(request), batch=batch)
    if getattr(request, "htmx", False):
        return _panel(request, batch, status=202)
    return redirect("batch_detail", number=number)


@require_GET
@capability_required(Capability.AUDIT_TRAIL_EXPORT)
def batch_pdf_download(request: HttpRequest, number: str, pk: int) -> FileResponse:
    export = get_object_or_404(PdfExport.objects.select_related("batch"), pk=pk, batch__number=number,
                               requested_by=_user(request))
    path = export_file(export)
    if path is None:
        raise Http404("This export is not ready, or its file is missing or no longer the one recorded.")
    return FileResponse(path.open("rb"), as_attachment=True, filename=f"{number}-batch-record.pdf",
                        content_type="application/pdf")
