"""Reads of the batch review, shared by the pages, the command and the release gate."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Case, Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce

from ebr.models import Batch, BatchStatus
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


def flags_by_step(batch: Batch, flags: list[ReviewFlag]) -> list[StepFlags]:
    """Batch-level flags first, then every step in stage and step order with its flags (review by exception).

    Reads the record's outline only, in one query: the whole batch_record (entries, signatures and
    their content hashes, step by step) took ~1 s of the review page of a 300-step batch.
    """
    by_step: dict[int | None, list[ReviewFlag]] = defaultdict(list)
    for flag in flags:  # one pass: a 300-step record with 2,000 flags is not 600,000 comparisons
        by_step[flag.step_id].append(flag)
    batch_level = StepFlags(sequence=None, title="Whole batch", stage="", flags=by_step.get(None, []))
    groups = [batch_level] if batch_level.flags else []
    # The order of batch_record: stages by their order (unique in a version), steps by sequence.
    steps = batch.steps.select_related("template__stage").order_by("template__stage__order", "sequence")
    for step in steps:
        groups.append(StepFlags(sequence=step.sequence, title=f"{step.template.code} {step.template.title}",
                                stage=step.template.stage.name, flags=by_step.get(step.pk, [])))
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
