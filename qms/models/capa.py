"""Corrective and preventive actions (ICH Q10 3.2.2; EU GMP Part I 1.4(xiv)).

A CAPA has corrective and preventive actions, each owned, due and completed with evidence
under its owner's signature; then an effectiveness check against criteria set in advance,
recorded under signature; then QA closure under signature. The steps are in qms/states.py.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Upper
from simple_history.models import HistoricalRecords


class CapaSource(models.TextChoices):
    DEVIATION = "deviation", "Deviation"
    AUDIT = "audit", "Audit or inspection"
    COMPLAINT = "complaint", "Complaint"
    TREND = "trend", "Trend analysis"


class CapaStatus(models.TextChoices):
    OPEN = "open", "Open (actions in progress)"
    EFFECTIVENESS_CHECK = "effectiveness_check", "Effectiveness check"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_CAPA_STATUSES = (CapaStatus.OPEN, CapaStatus.EFFECTIVENESS_CHECK)


class CapaActionKind(models.TextChoices):
    CORRECTIVE = "corrective", "Corrective"
    PREVENTIVE = "preventive", "Preventive"


class ActionStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class EffectivenessResult(models.TextChoices):
    EFFECTIVE = "effective", "Effective"
    NOT_EFFECTIVE = "not_effective", "Not effective"
    JUSTIFIED = "justified", "Not verified — justified"


class Capa(models.Model):
    number = models.CharField(max_length=20, unique=True)
    title = models.CharField(max_length=200)
    problem_statement = models.TextField()
    source = models.CharField(max_length=12, choices=CapaSource.choices)
    source_reference = models.CharField(max_length=200, blank=True,
                                        help_text="Audit report, complaint or trend report reference.")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    opened_at = models.DateTimeField()
    status = models.CharField(max_length=20, choices=CapaStatus.choices, default=CapaStatus.OPEN)
    effectiveness_criteria = models.TextField(blank=True)
    effectiveness_due = models.DateField(null=True, blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")
    closed_at = models.DateTimeField(null=True, blank=True)
    cancelled_reason = models.TextField(blank=True)
    # legacy paper record transcribed at go-live (qms/services/legacy_import.py); NULL otherwise
    paper_reference = models.CharField(  # noqa: DJ001  (NULL = not from paper; unique when set)
        max_length=60, null=True, blank=True, help_text="Reference of the paper record this was transcribed from.")
    paper_opened_on = models.DateField(null=True, blank=True,
                                       help_text="Date opened on paper (opened_at: when transcribed).")

    history = HistoricalRecords()

    class Meta:
        ordering = ["-opened_at", "-id"]
        verbose_name = "CAPA"
        verbose_name_plural = "CAPAs"
        indexes = [models.Index(fields=["status"], name="capa_status_idx")]
        constraints = [
            models.UniqueConstraint(Upper("paper_reference"), name="capa_paper_reference_unique"),
            models.CheckConstraint(name="capa_paper_reference_with_date", condition=(
                models.Q(paper_reference__isnull=True, paper_opened_on__isnull=True)
                | models.Q(paper_reference__isnull=False, paper_opened_on__isnull=False))),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_CAPA_STATUSES

    @property
    def transcribed_from(self) -> str:
        """"transcribed from paper record <reference>", or "" for a record born electronic."""
        return f"transcribed from paper record {self.paper_reference}" if self.paper_reference else ""

    def latest_effectiveness(self) -> CapaEffectivenessCheck | None:
        return self.effectiveness_checks.order_by("-checked_at", "-id").first()

    def signed_content(self) -> dict[str, Any]:
        """What QA closure covers: the problem, linked deviations, every action and its evidence,
        the criteria and the last effectiveness result (ICH Q10 3.2.2)."""
        latest = self.latest_effectiveness()
        return {
            "number": self.number, "title": self.title, "problem_statement": self.problem_statement,
            "source": self.source, "source_reference": self.source_reference,
            "deviations": sorted(self.deviation_links.values_list("deviation__number", flat=True)),
            "actions": [action.signed_content() for action in self.actions.order_by("sequence")],
            "effectiveness_criteria": self.effectiveness_criteria, "effectiveness_due": self.effectiveness_due,
            "effectiveness": latest.signed_content() if latest else None,
            # Only for transcribed records, so the content (and signatures) of every other record is unchanged.
            **({"paper_reference": self.paper_reference, "paper_opened_on": self.paper_opened_on}
               if self.paper_reference else {}),
        }


class CapaDeviation(models.Model):
    """A deviation this CAPA addresses (a CAPA may address several)."""

    capa = models.ForeignKey(Capa, on_delete=models.PROTECT, related_name="deviation_links")
    deviation = models.ForeignKey("qms.Deviation", on_delete=models.PROTECT, related_name="capa_links")

    history = HistoricalRecords()

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["capa", "deviation"], name="capa_deviation_unique")]

    def __str__(self) -> str:
        return f"{self.capa.number} ↔ {self.deviation.number}"


class CapaAction(models.Model):
    capa = models.ForeignKey(Capa, on_delete=models.PROTECT, related_name="actions")
    sequence = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=12, choices=CapaActionKind.choices)
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
        ordering = ["capa", "sequence"]
        constraints = [models.UniqueConstraint(fields=["capa", "sequence"], name="capa_action_sequence_unique")]

    def __str__(self) -> str:
        return f"{self.capa.number} action {self.sequence}"

    def signed_content(self) -> dict[str, Any]:
        return {"capa": self.capa.number, "sequence": self.sequence, "kind": self.kind,
                "description": self.description, "owner": self.owner.username, "due_date": self.due_date,
                "status": self.status, "completion_evidence": self.completion_evidence,
                "cancelled_reason": self.cancelled_reason}


class CapaEffectivenessCheck(models.Model):
    """One signed verification of effectiveness (a failed one sends the CAPA back to actions)."""

    capa = models.ForeignKey(Capa, on_delete=models.PROTECT, related_name="effectiveness_checks")
    result = models.CharField(max_length=14, choices=EffectivenessResult.choices)
    evidence = models.TextField(help_text="What was checked against the criteria, or why no check is possible.")
    checked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    checked_at = models.DateTimeField()

    history = HistoricalRecords()

    class Meta:
        ordering = ["checked_at", "id"]

    def __str__(self) -> str:
        return f"{self.capa.number} effectiveness: {self.get_result_display()}"

    def signed_content(self) -> dict[str, Any]:
        return {"capa": self.capa.number, "criteria": self.capa.effectiveness_criteria, "result": self.result,
                "evidence": self.evidence, "checked_by": self.checked_by.username}
