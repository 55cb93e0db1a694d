"""Change control (EU GMP Part I 1.4(xii), Annex 15 §11; ICH Q10 3.2.3).

A change is described with its reason and an impact assessment (validation, training,
documents, batches in progress), approved under a QA signature by someone other than its
author, implemented through owned tasks completed under signature, and closed by QA.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from qms.models.capa import ActionStatus


class ChangeType(models.TextChoices):
    PROCESS = "process", "Process or master record"
    EQUIPMENT = "equipment", "Equipment"
    FACILITY = "facility", "Facility or utilities"
    MATERIAL = "material", "Material or supplier"
    DOCUMENT = "document", "Procedure (SOP)"
    SYSTEM = "system", "Computerised system"


class ChangeControlStatus(models.TextChoices):
    OPEN = "open", "Open (assessment)"
    APPROVED = "approved", "Approved (implementation)"
    IMPLEMENTED = "implemented", "Implemented"
    CLOSED = "closed", "Closed"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_CHANGE_STATUSES = (ChangeControlStatus.OPEN, ChangeControlStatus.APPROVED, ChangeControlStatus.IMPLEMENTED)
# A change whose approval stands: ebr may make a master record version effective under it.
APPROVED_CHANGE_STATUSES = (ChangeControlStatus.APPROVED, ChangeControlStatus.IMPLEMENTED,
                            ChangeControlStatus.CLOSED)

IMPACT_FIELDS = ("impact_validation", "impact_training", "impact_documents", "impact_ongoing_batches")


class ChangeControl(models.Model):
    number = models.CharField(max_length=20, unique=True)
    title = models.CharField(max_length=200)
    change_type = models.CharField(max_length=12, choices=ChangeType.choices)
    description = models.TextField(help_text="What changes, from what to what.")
    justification = models.TextField(help_text="Why the change is needed.")
    affected_items = models.TextField(blank=True, help_text="Master records, SOPs, equipment concerned.")
    impact_validation = models.TextField(blank=True)
    impact_training = models.TextField(blank=True)
    impact_documents = models.TextField(blank=True)
    impact_ongoing_batches = models.TextField(blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    opened_at = models.DateTimeField()
    status = models.CharField(max_length=12, choices=ChangeControlStatus.choices, default=ChangeControlStatus.OPEN)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    implemented_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")
    closed_at = models.DateTimeField(null=True, blank=True)
    closure_summary = models.TextField(blank=True)
    outcome_reason = models.TextField(blank=True, help_text="Why it was rejected or cancelled.")

    history = HistoricalRecords()

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [models.Index(fields=["status"], name="change_status_idx")]

    def __str__(self) -> str:
        return self.number

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_CHANGE_STATUSES

    def signed_content(self) -> dict[str, Any]:
        """The change as proposed and assessed: what approval and closure signatures cover.

        Tasks are signed by their performers; closure is signed on the change as approved, so
        the approval signature stays valid for the life of the record.
        """
        return {
            "number": self.number, "title": self.title, "change_type": self.change_type,
            "description": self.description, "justification": self.justification,
            "affected_items": self.affected_items, "author": self.author.username,
            **{field: getattr(self, field) for field in IMPACT_FIELDS},
        }


class ChangeTask(models.Model):
    change = models.ForeignKey(ChangeControl, on_delete=models.PROTECT, related_name="tasks")
    sequence = models.PositiveSmallIntegerField()
    description = models.TextField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    due_date = models.DateField()
    status = models.CharField(max_length=10, choices=ActionStatus.choices, default=ActionStatus.OPEN)
    completion_evidence = models.TextField(blank=True)
    completed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_reason = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["change", "sequence"]
        constraints = [models.UniqueConstraint(fields=["change", "sequence"], name="change_task_sequence_unique")]

    def __str__(self) -> str:
        return f"{self.change.number} task {self.sequence}"

    def signed_content(self) -> dict[str, Any]:
        return {"change": self.change.number, "sequence": self.sequence, "description": self.description,
                "owner": self.owner.username, "due_date": self.due_date, "status": self.status,
                "completion_evidence": self.completion_evidence}
