"""Deviations (EU GMP Part I 1.4(xiv), 8.15; ICH Q10 3.2.2): what went wrong, its risk, its cause.

A deviation is reported (open), classified and risk-assessed by QA (triage), investigated to
a root cause with its impact on every linked batch (investigation), submitted with the
investigator's signature (pending approval) and closed with the QA approver's signature, or
cancelled with a reason. The allowed steps are the table in qms/states.py.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Upper
from simple_history.models import HistoricalRecords

from qms.subjects import SUBJECT_TYPE_NAMES, Subject

__all__ = [
    "BatchImpact", "CapaDecision", "Classification", "Deviation", "DeviationExtension", "DeviationSource",
    "DeviationStatus", "DeviationSubject", "RootCauseCategory", "Subject",
]


class DeviationSource(models.TextChoices):
    MANUAL = "manual", "Reported by a person"
    OOS_ENTRY = "oos_entry", "Out-of-specification entry"
    INSTRUMENT_ALARM = "instrument_alarm", "Instrument alarm"
    REVIEW_FLAG = "review_flag", "Batch record review flag"
    PAPER_RECORD = "paper_record", "Transcribed from paper record"


class DeviationStatus(models.TextChoices):
    OPEN = "open", "Open"
    TRIAGE = "triage", "Triaged"
    INVESTIGATION = "investigation", "Under investigation"
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_DEVIATION_STATUSES = (DeviationStatus.OPEN, DeviationStatus.TRIAGE, DeviationStatus.INVESTIGATION,
                             DeviationStatus.PENDING_APPROVAL)


class Classification(models.TextChoices):
    MINOR = "minor", "Minor"
    MAJOR = "major", "Major"
    CRITICAL = "critical", "Critical"


class RootCauseCategory(models.TextChoices):
    PEOPLE = "people", "People"
    METHOD = "method", "Method"
    MACHINE = "machine", "Machine"
    MATERIAL = "material", "Material"
    ENVIRONMENT = "environment", "Environment"
    MEASUREMENT = "measurement", "Measurement"


class CapaDecision(models.TextChoices):
    REQUIRED = "required", "CAPA required"
    NOT_REQUIRED = "not_required", "CAPA not required"


class BatchImpact(models.TextChoices):
    NOT_ASSESSED = "not_assessed", "Not assessed"
    NONE = "no_impact", "No impact"
    POSSIBLE = "possible_impact", "Possible impact"
    CONFIRMED = "confirmed_impact", "Confirmed impact"


def _username(user: Any) -> str:
    return user.username if user is not None else ""


class Deviation(models.Model):
    number = models.CharField(max_length=20, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField()
    occurred_at = models.DateTimeField(help_text="When the event happened (may be earlier than its discovery).")
    discovered_at = models.DateTimeField(help_text="When someone noticed it.")
    opened_at = models.DateTimeField(help_text="When it was reported in the system (server time).")
    immediate_actions = models.TextField(blank=True)
    source = models.CharField(max_length=20, choices=DeviationSource.choices, default=DeviationSource.MANUAL)
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    reporter_label = models.CharField(max_length=200, help_text="Username, or the system component that reported.")
    status = models.CharField(max_length=20, choices=DeviationStatus.choices, default=DeviationStatus.OPEN)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+", help_text="Person responsible for the investigation.")
    due_date = models.DateField(null=True, blank=True)
    # triage (QA): classification and ICH Q9 risk assessment
    classification = models.CharField(max_length=10, choices=Classification.choices, blank=True)
    classification_rationale = models.TextField(blank=True)
    severity = models.PositiveSmallIntegerField(null=True, blank=True)
    occurrence = models.PositiveSmallIntegerField(null=True, blank=True)
    detectability = models.PositiveSmallIntegerField(null=True, blank=True)
    rpn = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Severity × occurrence × detectability.")
    risk_level = models.CharField(max_length=10, blank=True)
    triaged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    triaged_at = models.DateTimeField(null=True, blank=True)
    # investigation
    root_cause_category = models.CharField(max_length=12, choices=RootCauseCategory.choices, blank=True)
    root_cause_whys = models.JSONField(default=list, blank=True, help_text="The 5-why chain, first why first.")
    root_cause = models.TextField(blank=True, help_text="The root cause found.")
    product_impact = models.TextField(blank=True, help_text="Impact on product quality and patient safety.")
    investigated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+")
    investigated_at = models.DateTimeField(null=True, blank=True)
    # CAPA decision (ICH Q10 3.2.2)
    capa_decision = models.CharField(max_length=12, choices=CapaDecision.choices, blank=True)
    capa_rationale = models.TextField(blank=True)
    capa = models.ForeignKey("qms.Capa", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                             help_text="The CAPA the decision points to.")
    # outcome
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    submitted_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")
    closed_at = models.DateTimeField(null=True, blank=True)
    cancelled_reason = models.TextField(blank=True)
    # legacy paper record transcribed at go-live (qms/services/legacy_import.py); NULL for records
    # born electronic. Nullable, because history tables may only gain nullable columns.
    paper_reference = models.CharField(  # noqa: DJ001  (NULL = not from paper; unique when set)
        max_length=60, null=True, blank=True, help_text="Reference of the paper record this was transcribed from.")
    paper_opened_on = models.DateField(null=True, blank=True,
                                       help_text="Date opened on paper (opened_at: when transcribed).")

    history = HistoricalRecords()

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [
            models.Index(fields=["status", "due_date"], name="deviation_status_due_idx"),
            models.Index(fields=["opened_at"], name="deviation_opened_idx"),
        ]
        constraints = [
            models.UniqueConstraint(Upper("paper_reference"), name="deviation_paper_reference_unique"),
            models.CheckConstraint(name="deviation_paper_reference_with_date", condition=(
                models.Q(paper_reference__isnull=True, paper_opened_on__isnull=True)
                | models.Q(paper_reference__isnull=False, paper_opened_on__isnull=False))),

            models.CheckConstraint(name="deviation_scores_1_to_5", condition=(
                (models.Q(severity__isnull=True) | models.Q(severity__gte=1, severity__lte=5))
                & (models.Q(occurrence__isnull=True) | models.Q(occurrence__gte=1, occurrence__lte=5))
                & (models.Q(detectability__isnull=True) | models.Q(detectability__gte=1, detectability__lte=5)))),
            models.CheckConstraint(name="deviation_discovered_after_occurred",
                                   condition=models.Q(discovered_at__gte=models.F("occurred_at"))),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_DEVIATION_STATUSES

    @property
    def transcribed_from(self) -> str:
        """"transcribed from paper record <reference>", or "" for a record born electronic."""
        return f"transcribed from paper record {self.paper_reference}" if self.paper_reference else ""

    def get_source_display(self) -> str:  # type: ignore[no-redef]  # Django keeps a model's own
        # The source label is shown by every list, page, CSV and the batch PDF: a transcribed
        # record names its paper reference there, so no reader mistakes it for a native report.
        label = str(DeviationSource(self.source).label) if self.source in DeviationSource.values else self.source
        return f"{label} {self.paper_reference}" if self.paper_reference else label

    def signed_content(self) -> dict[str, Any]:
        """The deviation report a signature covers: facts, triage, investigation, CAPA decision.

        Workflow bookkeeping (status, owner, due date, who/when) is left out, so the
        investigator's signature stays valid when QA closes the record (21 CFR 11.70).
        """
        return {
            "number": self.number, "title": self.title, "description": self.description,
            "occurred_at": self.occurred_at, "discovered_at": self.discovered_at,
            "immediate_actions": self.immediate_actions, "source": self.source, "reporter": self.reporter_label,
            "subjects": [subject.signed_content() for subject in self.subjects.order_by("id")],
            "classification": self.classification, "classification_rationale": self.classification_rationale,
            "severity": self.severity, "occurrence": self.occurrence, "detectability": self.detectability,
            "rpn": self.rpn, "risk_level": self.risk_level,
            "root_cause_category": self.root_cause_category, "root_cause_whys": self.root_cause_whys,
            "root_cause": self.root_cause, "product_impact": self.product_impact,
            "capa_decision": self.capa_decision, "capa_rationale": self.capa_rationale,
            "capa": self.capa.number if self.capa is not None else "",
            # Only for transcribed records, so the content (and signatures) of every other record is unchanged.
            **({"paper_reference": self.paper_reference, "paper_opened_on": self.paper_opened_on}
               if self.paper_reference else {}),
        }


class DeviationSubject(models.Model):
    """One record the deviation concerns (no database link: qms does not know ebr's tables)."""

    deviation = models.ForeignKey(Deviation, on_delete=models.PROTECT, related_name="subjects")
    subject_type = models.CharField(max_length=100)
    subject_id = models.CharField(max_length=64)
    label = models.CharField(max_length=200)
    impact = models.CharField(max_length=20, choices=BatchImpact.choices, default=BatchImpact.NOT_ASSESSED)
    impact_assessment = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["subject_type", "subject_id"], name="deviation_subject_idx")]
        constraints = [models.UniqueConstraint(fields=["deviation", "subject_type", "subject_id"],
                                               name="deviation_subject_unique")]

    def __str__(self) -> str:
        return f"{self.deviation.number} · {self.type_name} {self.label}"

    @property
    def type_name(self) -> str:
        return SUBJECT_TYPE_NAMES.get(self.subject_type, self.subject_type)

    @property
    def as_subject(self) -> Subject:
        return Subject(self.subject_type, self.subject_id, self.label)

    def signed_content(self) -> dict[str, Any]:
        return {"type": self.subject_type, "id": self.subject_id, "label": self.label,
                "impact": self.impact, "impact_assessment": self.impact_assessment}


class DeviationExtension(models.Model):
    """A signed extension of a deviation's due date, with its justification."""

    deviation = models.ForeignKey(Deviation, on_delete=models.PROTECT, related_name="extensions")
    previous_due_date = models.DateField()
    new_due_date = models.DateField()
    justification = models.TextField()
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    granted_at = models.DateTimeField()

    history = HistoricalRecords()

    class Meta:
        ordering = ["granted_at", "id"]
        constraints = [models.CheckConstraint(name="extension_moves_due_date_later",
                                              condition=models.Q(new_due_date__gt=models.F("previous_due_date")))]

    def __str__(self) -> str:
        return f"{self.deviation.number} extension to {self.new_due_date:%Y-%m-%d}"

    def signed_content(self) -> dict[str, Any]:
        return {"deviation": self.deviation.number, "previous_due_date": self.previous_due_date,
                "new_due_date": self.new_due_date, "justification": self.justification,
                "granted_by": _username(self.granted_by)}
