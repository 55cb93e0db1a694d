"""Batch reviews, their flags and the search index of batch record text.

A `BatchReview` is one run of the review over one batch (draft EU GMP Annex 22: the output of
a static, deterministic model and fixed checks, versioned, advisory). Each `ReviewFlag` names
the record it came from, the text around the evidence and the rule and version that raised
it; QA dispositions every flag with an e-signature (21 CFR 11.50/11.70, EU GMP Annex 11 §14).
Reviews and flags are history-tracked; the history tables are append-only in the database.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from simple_history.models import HistoricalRecords


class ReviewStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class FlagSeverity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    MAJOR = "major", "Major"
    MINOR = "minor", "Minor"


class FlagCategory(models.TextChoices):
    CONTAMINATION = "contamination", "Contamination"
    OUT_OF_SPEC = "out_of_spec", "Out of specification"
    EQUIPMENT = "equipment", "Equipment"
    MATERIAL = "material", "Material"
    PROCEDURE = "procedure", "Procedure"
    DATA_INTEGRITY = "data_integrity", "Data integrity"
    IDENTITY = "identity", "Identity / custody"


class SourceKind(models.TextChoices):
    ENTRY_VALUE = "entry_value", "Entry value"
    ENTRY_COMMENT = "entry_comment", "Entry comment"
    CORRECTION_REASON = "correction_reason", "Correction reason"
    STEP_REMARKS = "step_remarks", "Step remarks"
    DEVIATION = "deviation", "Deviation description"
    ALARM_ACK = "alarm_ack", "Alarm acknowledgement"
    CUSTODY = "custody", "Chain of custody"
    STRUCTURED = "structured", "Structured check"


class Disposition(models.TextChoices):
    NONE = "none", "Not dispositioned"
    NO_IMPACT = "no_impact", "No impact"
    DEVIATION_RAISED = "deviation_raised", "Deviation raised"
    DEVIATION_LINKED = "deviation_linked", "Linked to a deviation"


# Outcomes that mean the flag pointed at something real (monitoring of real-world precision).
ACTION_DISPOSITIONS = frozenset({Disposition.DEVIATION_RAISED, Disposition.DEVIATION_LINKED})


class BatchReview(models.Model):
    """One versioned run of the review over one batch; a re-run adds a version and keeps the old."""

    batch = models.ForeignKey("ebr.Batch", on_delete=models.PROTECT, related_name="reviews")
    version = models.PositiveIntegerField()
    pipeline_version = models.CharField(max_length=200, blank=True)
    checks_version = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.QUEUED)
    request_id = models.CharField(max_length=100, unique=True,
                                  help_text="Outbox message / Celery task id, or cli-<uuid>: makes runs idempotent.")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    requested_by_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    # Nullable only so that its history column is NULL in rows chained before it existed (the audit
    # chain's digest leaves nulls out); the application stores "" or a digest.
    texts_sha256 = models.CharField(max_length=64, blank=True, null=True, default="",  # noqa: DJ001
                                    help_text="Digest of the texts the run reads, in order.")
    risk_score = models.PositiveIntegerField(default=0)
    critical_count = models.PositiveIntegerField(default=0)
    major_count = models.PositiveIntegerField(default=0)
    minor_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["batch", "-version"]
        constraints = [models.UniqueConstraint(fields=["batch", "version"], name="batch_review_version_unique")]

    def __str__(self) -> str:
        return f"{self.batch} review v{self.version}"

    @property
    def flag_count(self) -> int:
        return self.critical_count + self.major_count + self.minor_count


class ReviewFlag(models.Model):
    """One thing QA must look at, with where it came from and how QA dispositioned it."""

    id = models.BigAutoField(primary_key=True)
    review = models.ForeignKey(BatchReview, on_delete=models.PROTECT, related_name="flags")
    batch = models.ForeignKey("ebr.Batch", on_delete=models.PROTECT, related_name="review_flags")
    step = models.ForeignKey("ebr.StepExecution", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    source_kind = models.CharField(max_length=24, choices=SourceKind.choices)
    source_id = models.CharField(max_length=64, blank=True)
    source_text = models.TextField(blank=True, help_text="The full text the evidence is in, for context.")
    category = models.CharField(max_length=24, choices=FlagCategory.choices)
    severity = models.CharField(max_length=16, choices=FlagSeverity.choices)
    start = models.PositiveIntegerField(default=0)
    end = models.PositiveIntegerField(default=0)
    evidence = models.TextField()
    explanation = models.TextField(blank=True)
    rule = models.CharField(max_length=120)
    rule_version = models.CharField(max_length=200, help_text="Pipeline or checks version that raised it.")
    disposition = models.CharField(max_length=24, choices=Disposition.choices, default=Disposition.NONE)
    disposition_reason = models.TextField(blank=True)
    deviation_number = models.CharField(max_length=32, blank=True)
    dispositioned_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                         related_name="+")
    dispositioned_at = models.DateTimeField(null=True, blank=True)
    signature = models.ForeignKey("qms.Signature", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    history = HistoricalRecords()

    class Meta:
        ordering = ["review", "id"]
        indexes = [
            models.Index(fields=["review", "disposition"], name="review_flag_open_idx"),
            models.Index(fields=["rule", "rule_version"], name="review_flag_rule_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.batch} {self.rule}: {self.evidence[:40]}"

    def signed_content(self) -> dict[str, object]:
        """A disposition signature covers the flag as raised and the outcome chosen (21 CFR 11.70)."""
        return {"batch": self.batch_id, "review": self.review_id, "flag": self.pk, "rule": self.rule,
                "rule_version": self.rule_version, "category": self.category, "severity": self.severity,
                "evidence": self.evidence, "source": [self.source_kind, self.source_id],
                "disposition": self.disposition, "reason": self.disposition_reason,
                "deviation": self.deviation_number}

    @property
    def context_before(self) -> str:
        return self.source_text[: self.start] if self.source_text else ""

    @property
    def context_after(self) -> str:
        return self.source_text[self.end:] if self.source_text else ""


class RecordText(models.Model):
    """Search index over every free text of every batch record (derived data, rebuilt by the review).

    Not a GxP record itself: the originals stay in ebr/qms; this table only makes them findable.
    Product, stage and time are denormalised so that a search over 10,000 batches is one index scan.
    """

    id = models.BigAutoField(primary_key=True)
    batch = models.ForeignKey("ebr.Batch", on_delete=models.CASCADE, related_name="+")
    step = models.ForeignKey("ebr.StepExecution", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    product = models.ForeignKey("ebr.Product", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    stage_name = models.CharField(max_length=200, blank=True)
    step_label = models.CharField(max_length=300, blank=True)
    source_kind = models.CharField(max_length=24, choices=SourceKind.choices)
    source_id = models.CharField(max_length=64, blank=True)
    text = models.TextField()
    occurred_at = models.DateTimeField(null=True, blank=True)
    categories = models.CharField(max_length=200, blank=True, help_text="Flag categories raised on this text.")
    search = SearchVectorField(null=True)

    class Meta:
        indexes = [
            GinIndex(fields=["search"], name="record_text_search_gin"),
            models.Index(fields=["batch"], name="record_text_batch_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.batch_id} {self.source_kind}: {self.text[:40]}"
