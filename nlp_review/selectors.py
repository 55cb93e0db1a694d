"""Reads of the batch review, shared by the pages, the command and the release gate."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Case, Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce

from ebr.models import Batch, BatchStatus
from ebr.selectors import BatchRecord
from nlp_review.models import ACTION_DISPOSITIONS, BatchReview, Disposition, ReviewFlag

SEVERITY_ORDER = Case(When(severity="critical", then=Value(0)), When(severity="major", then=Value(1)),
                      default=Value(2), output_field=IntegerField())


def review_flags(review: BatchReview) -> QuerySet[ReviewFlag]:
    """A review's flags, most severe first, then in step order."""
    return (review.flags.select_related("step__template", "dispositioned_by")
            .annotate(severity_rank=SEVERITY_ORDER).order_by("severity_rank", "step__sequence", "id"))


def reviews_for(batch: Batch) -> QuerySet[BatchReview]:
    return BatchReview.objects.filter(batch=batch).order_by("-version")


def review_queue() -> QuerySet[Batch]:
    """Completed batches and those in QA review, highest risk first (ICH Q9), with their latest review."""
    latest = BatchReview.objects.filter(batch=OuterRef("pk")).order_by("-version")
    open_flags = (ReviewFlag.objects.filter(review=OuterRef("review_id"), disposition=Disposition.NONE)
                  .order_by().values("review").annotate(n=Count("id")).values("n"))
    return (Batch.objects.filter(status__in=[BatchStatus.COMPLETED, BatchStatus.IN_REVIEW])
            .select_related("master_version__master_record__product")
            .annotate(review_id=Subquery(latest.values("pk")[:1]),
                      review_version=Subquery(latest.values("version")[:1]),
                      review_status=Subquery(latest.values("status")[:1]),
                      risk_score=Coalesce(Subquery(latest.values("risk_score")[:1]), Value(-1)),
                      critical_count=Subquery(latest.values("critical_count")[:1]),
                      major_count=Subquery(latest.values("major_count")[:1]),
                      minor_count=Subquery(latest.values("minor_count")[:1]))
            .annotate(open_flags=Coalesce(Subquery(open_flags), Value(0)))
            .order_by("-risk_score", "completed_at"))


@dataclass
class StepFlags:
    """One step of the record with its flags; a step without flags is routine (collapsed)."""

    sequence: int | None
    title: str
    stage: str
    flags: list[ReviewFlag] = field(default_factory=list)

    @property
    def routine(self) -> bool:
        return not self.flags


def flags_by_step(record: BatchRecord, flags: list[ReviewFlag]) -> list[StepFlags]:
    """Batch-level flags first, then every step in order with its flags (review by exception)."""
    batch_level = StepFlags(sequence=None, title="Whole batch", stage="", flags=[f for f in flags if not f.step_id])
    groups = [batch_level] if batch_level.flags else []
    for stage in record.stages:
        for step_record in stage.steps:
            step = step_record.step
            groups.append(StepFlags(sequence=step.sequence, title=f"{step.template.code} {step.template.title}",
                                    stage=stage.name, flags=[f for f in flags if f.step_id == step.pk]))
    return groups


@dataclass(frozen=True)
class RulePrecision:
    rule: str
    rule_version: str
    raised: int
    dispositioned: int
    needing_action: int

    @property
    def precision(self) -> float | None:
        """Real-world precision: dispositioned flags QA found needing action (a deviation)."""
        return self.needing_action / self.dispositioned if self.dispositioned else None


def rule_precision() -> list[RulePrecision]:
    """Per rule and rule/model version (draft Annex 22: performance monitored in operation)."""
    rows = (ReviewFlag.objects.values("rule", "rule_version")
            .annotate(raised=Count("id"), dispositioned=Count("id", filter=~Q(disposition=Disposition.NONE)),
                      needing_action=Count("id", filter=Q(disposition__in=list(ACTION_DISPOSITIONS))))
            .order_by("rule", "rule_version"))
    return [RulePrecision(**row) for row in rows]
