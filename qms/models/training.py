"""Training records (EU GMP Part I 2.8-2.12; 21 CFR 11.10(i)): who is trained on which document
version, by whom, until when. A person may execute a master record only while trained on it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords


class DocumentKind(models.TextChoices):
    MASTER_RECORD = "master_record", "Master batch record"
    SOP = "sop", "Standard operating procedure"


class TrainingRecord(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="training_records")
    document_kind = models.CharField(max_length=16, choices=DocumentKind.choices)
    document_code = models.CharField(max_length=64)
    version = models.CharField(max_length=32)
    trained_on = models.DateField()
    trainer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    valid_until = models.DateField(null=True, blank=True, help_text="Empty: valid until the document changes.")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField()

    history = HistoricalRecords()

    class Meta:
        ordering = ["-trained_on", "-id"]
        indexes = [models.Index(fields=["user", "document_kind", "document_code", "version"],
                                name="training_user_document_idx"),
                   models.Index(fields=["valid_until"], name="training_valid_until_idx")]
        constraints = [
            models.UniqueConstraint(fields=["user", "document_kind", "document_code", "version", "trained_on"],
                                    name="training_record_unique"),
            models.CheckConstraint(name="training_valid_after_trained",
                                   condition=models.Q(valid_until__isnull=True)
                                   | models.Q(valid_until__gte=models.F("trained_on"))),
        ]

    def __str__(self) -> str:
        return f"{self.user.username} · {self.document_code} v{self.version} ({self.trained_on:%Y-%m-%d})"

    @property
    def document_label(self) -> str:
        return f"{self.document_code} v{self.version}"
