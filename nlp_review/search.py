"""Full-text search over every batch record's free text (PostgreSQL tsvector + GIN index).

Auditors and QA find records by what people wrote ("which batches mentioned clumping during
expansion?"): EU GMP Annex 11 §8 (data retrievable), ALCOA+ available. The `RecordText` table is
derived from the record by the review run (`record_texts_index`); the originals stay where they
are, and every hit links to the batch record itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TYPE_CHECKING

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank
from django.db import connection
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from ebr.selectors import BatchRecord
from nlp_review.models import RecordText

if TYPE_CHECKING:
    from nlp_review.models import BatchReview
    from nlp_review.services import TextSource

CONFIG = "english"  # also spelled out in _INSERT
# Markers no operator types; the snippet is HTML-escaped first, then they become <mark>.
_START, _STOP = "\x02", "\x03"

_INSERT = """
INSERT INTO nlp_review_recordtext
    (batch_id, product_id, step_id, stage_name, step_label, source_kind, source_id, text, occurred_at, categories,
     search)
SELECT %s, %s, s.step_id, s.stage_name, s.step_label, s.kind, s.source_id, s.text, s.occurred_at, s.categories,
       setweight(to_tsvector('english', s.text), 'A')
       || setweight(to_tsvector('english', s.stage_name || ' ' || s.step_label), 'C')
FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],
            %s::text[]) AS s(step_id, stage_name, step_label, kind, source_id, text, occurred_at, categories)
"""


def record_texts_index(record: BatchRecord, texts: Sequence[TextSource], review: BatchReview | None = None) -> int:
    """Replace the batch's rows in the search index with its current texts (one statement)."""
    batch = record.batch
    stages = {step_record.step.pk: (stage.name, f"{step_record.step.template.code} {step_record.step.template.title}")
              for stage in record.stages for step_record in stage.steps}
    categories: dict[tuple[str, str], set[str]] = {}
    if review is not None:
        for kind, source_id, category in review.flags.values_list("source_kind", "source_id", "category"):
            categories.setdefault((kind, source_id), set()).add(category)
    RecordText.objects.filter(batch=batch).delete()
    columns: list[list[object]] = [[], [], [], [], [], [], [], []]
    for source in texts:
        stage, label = stages.get(source.step.pk, ("", "")) if source.step else ("", "")
        row = [source.step.pk if source.step else None, stage, label, str(source.kind), source.source_id,
               source.text, source.occurred_at, " ".join(sorted(categories.get((source.kind, source.source_id), ())))]
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    if not texts:
        return 0
    product_id = batch.master_version.master_record.product_id
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, [batch.pk, product_id, *columns])
    return len(texts)


@dataclass(frozen=True)
class SearchFilters:
    q: str = ""
    product: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    step: str = ""        # stage or step name/code, e.g. "expansion"
    category: str = ""    # a flag category raised on the text


@dataclass(frozen=True)
class SearchHit:
    batch_number: str
    product: str
    stage_name: str
    step_label: str
    source_kind: str
    occurred_at: datetime | None
    snippet: SafeString


def _filtered(filters: SearchFilters) -> QuerySet[RecordText]:
    texts = RecordText.objects.all()
    if filters.product:
        texts = texts.filter(product_id=filters.product)
    if filters.date_from:
        texts = texts.filter(occurred_at__gte=timezone.make_aware(datetime.combine(filters.date_from, time.min)))
    if filters.date_to:
        texts = texts.filter(occurred_at__lte=timezone.make_aware(datetime.combine(filters.date_to, time.max)))
    if filters.step:
        texts = texts.filter(Q(stage_name__icontains=filters.step) | Q(step_label__icontains=filters.step))
    if filters.category:
        texts = texts.filter(categories__contains=filters.category)
    return texts


def _snippet(headline: str) -> SafeString:
    return mark_safe(escape(headline).replace(_START, "<mark>").replace(_STOP, "</mark>"))  # noqa: S308


def record_search(filters: SearchFilters, limit: int = 50) -> tuple[list[SearchHit], int]:
    """Hits ranked by relevance with highlighted snippets, and how many batches match in all."""
    if not filters.q.strip():
        return [], 0
    query = SearchQuery(filters.q, search_type="websearch", config=CONFIG)
    matches = _filtered(filters).filter(search=query)
    batches = matches.values("batch_id").distinct().count()
    ranked = (matches.annotate(rank=SearchRank(F("search"), query))
              .order_by("-rank", "-occurred_at")
              .select_related("batch", "product")[:limit])
    # Headlines only for the rows shown: ts_headline re-parses the text and is the slow part.
    headlines = dict(RecordText.objects.filter(pk__in=[t.pk for t in ranked]).annotate(
        headline=SearchHeadline("text", query, config=CONFIG, start_sel=_START, stop_sel=_STOP,
                                max_words=30, min_words=10)).values_list("pk", "headline"))
    hits = [SearchHit(batch_number=t.batch.number, product=t.product.code if t.product else "",
                      stage_name=t.stage_name, step_label=t.step_label, source_kind=t.get_source_kind_display(),
                      occurred_at=t.occurred_at, snippet=_snippet(headlines.get(t.pk, t.text)))
            for t in ranked]
    return hits, batches
