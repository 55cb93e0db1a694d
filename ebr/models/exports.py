"""Signed PDF exports requested from the screen: one row per request, progress, and the file made.

A job record, not GxP data: the evidence of each export is its EXPORT_CREATED audit event
(fingerprint and file SHA-256, 21 CFR 11.10(e)); this row lets the requester follow progress
and download the file, and lets a re-delivered task see that the work is already done.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from ebr.models.batches import Batch


class PdfExportStatus(models.TextChoices):
    PENDING = "pending", "Queued"
    RUNNING = "running", "Being produced"
    DONE = "done", "Ready"
    FAILED = "failed", "Failed"


class PdfExport(models.Model):
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="pdf_exports")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=PdfExportStatus.choices, default=PdfExportStatus.PENDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent, for the progress bar.")
    stage = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the record content.")
    file_path = models.CharField(max_length=500, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the signed PDF file.")
    file_size = models.PositiveBigIntegerField(null=True, blank=True)
    pages = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["batch", "-requested_at"], name="pdf_export_batch_idx")]

    def __str__(self) -> str:
        return f"PDF of {self.batch.number} ({self.get_status_display()})"

    @property
    def in_flight(self) -> bool:
        return self.status in (PdfExportStatus.PENDING, PdfExportStatus.RUNNING)
