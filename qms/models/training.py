"""Training records (EU GMP Part I 2.8-2.12; 21 CFR 11.10(i)): who is trained on which document
version, by whom, until when. A person may execute a master record only while trained on it,
and a record counts only once its trainer has confirmed it (EU GMP Part I 2.8-2.12; 21 CFR 11.50).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords


class DocumentKind(models.TextChoices):
    MASTER_RECORD = "master_record", "Master batch record"
    SOP = "sop", "Standard operating procedure"


class TrainerConfirmation(models.TextChoices):
    """Where a record stands with its trainer: what the list shows and what the services read."""

    AWAITING = "awaiting_trainer", "Awaiting trainer"
    CONFIRMED = "confirmed", "Confirmed"
    DECLINED = "declined", "Declined by trainer"
    WITHDRAWN = "withdrawn", "Withdrawn by recorder"


# Records neither declined by their trainer nor withdrawn by their recorder: the ones that hold their
# place (one per person, document version and day) and may count once confirmed.
NOT_VOID = models.Q(trainer_declined_at__isnull=True, withdrawn_at__isnull=True)


# The fields a signature on a training record covers: the facts of the training, not where it
# stands with its trainer, so that the recorder's "authored" signature stays valid when the trainer
# confirms or declines. They are the model's fields as they were before the confirmation fields
# came, so signatures applied before then still verify (qms.signatures.content_of).
SIGNED_FIELDS = ("id", "user", "document_kind", "document_code", "version", "trained_on", "trainer", "valid_until",
                 "recorded_by", "recorded_at")


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
    # The trainer vouches for the record under their own signature; until then it opens no gate.
    # Nullable, the reason text too: the history table is hash-chained and may only gain nullable
    # columns, so that the digests of rows written before stay valid (qms/audit/dbtriggers.py).
    trainer_confirmed_at = models.DateTimeField(null=True, blank=True)
    trainer_declined_at = models.DateTimeField(null=True, blank=True)
    trainer_decline_reason = models.TextField(null=True, blank=True)  # noqa: DJ001  (see above)
    # The recorder takes back a record still awaiting its trainer (a wrong trainer named, one who left):
    # kept, never counts, and frees its place (qms.services.training.training_record_withdraw).
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_reason = models.TextField(null=True, blank=True)  # noqa: DJ001  (see above)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-trained_on", "-id"]
        indexes = [models.Index(fields=["user", "document_kind", "document_code", "version"],
                                name="training_user_document_idx"),
                   models.Index(fields=["valid_until"], name="training_valid_until_idx")]
        constraints = [
            # A declined or withdrawn record frees its place: the recorder may then record the training
            # with the person who did give it.
            models.UniqueConstraint(fields=["user", "document_kind", "document_code", "version", "trained_on"],
                                    condition=NOT_VOID,
                                    name="training_record_unique"),
            models.CheckConstraint(name="training_valid_after_trained",
                                   condition=models.Q(valid_until__isnull=True)
                                   | models.Q(valid_until__gte=models.F("trained_on"))),
            models.CheckConstraint(name="training_confirmed_or_declined_once",
                                   condition=models.Q(trainer_confirmed_at__isnull=True)
                                   | models.Q(trainer_declined_at__isnull=True)),
            # Withdrawn only while it awaited its trainer: never after a confirmation or a decline.
            models.CheckConstraint(name="training_withdrawn_only_undecided",
                                   condition=models.Q(withdrawn_at__isnull=True)
                                   | models.Q(trainer_confirmed_at__isnull=True, trainer_declined_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.user.username} · {self.document_code} v{self.version} ({self.trained_on:%Y-%m-%d})"

    @property
    def document_label(self) -> str:
        return f"{self.document_code} v{self.version}"

    @property
    def valid_until_label(self) -> str:
        """Its last day, or (no date) "the document changes": a new version takes effect and the person
        must be trained again. Worded the same on every page that shows it."""
        return f"{self.valid_until:%Y-%m-%d}" if self.valid_until is not None else "the document changes"

    @property
    def trainer_confirmation(self) -> TrainerConfirmation:
        if self.trainer_confirmed_at is not None:
            return TrainerConfirmation.CONFIRMED
        if self.trainer_declined_at is not None:
            return TrainerConfirmation.DECLINED
        if self.withdrawn_at is not None:
            return TrainerConfirmation.WITHDRAWN
        return TrainerConfirmation.AWAITING

    def signed_content(self) -> dict[str, Any]:
        return {field.attname: field.value_from_object(self) for field in self._meta.concrete_fields
                if field.name in SIGNED_FIELDS}
