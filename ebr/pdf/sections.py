"""The extension point of the PDF record: an ordered list of section providers.

The core of the document (cover, every stage and step, the audit-trail appendix) is fixed.
Everything between the steps and the appendix comes from providers, so that parts owned by
other apps or issues plug in without touching the renderer:

    from ebr.pdf.sections import Section, section_provider

    @section_provider("review_flags", order=30)
    def review_flags(batch, record):          # -> Section | None (None: nothing to print)
        return Section(key="review_flags", title="Review flags", content=[...], render=draw)

A provider returns the section's `content` (JSON-serialisable, canonical: it enters the
record fingerprint, so it must depend neither on the time of export nor on the facility's
zone: moments as `utc_iso`, signatures as `signature_recorded`, values as stored, never as
printed) and a `render(context)` that returns reportlab flowables. Register from an
AppConfig.ready() (nlp_review may import ebr, never the reverse); registering a key again
replaces the earlier provider.

Built-in providers (ebr/pdf/providers.py), by order: 20 deviations and CAPA, 30 review flags
(through the nlp_review app's `review_flags_for_pdf` hook, when it has one), 40 chain of
custody, 45 equipment and materials, 50 process data charts (when instrument readings exist).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reportlab.platypus import Flowable

    from ebr.models import Batch
    from ebr.pdf.styles import RenderContext
    from ebr.selectors import BatchRecord
    from qms.signatures import SignatureManifestation


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    content: Any
    render: Callable[[RenderContext], list[Flowable]]


SectionProvider = Callable[["Batch", "BatchRecord"], "Section | None"]


def utc_iso(moment: datetime | None) -> str | None:
    """A moment as the fingerprint holds it: ISO 8601 in UTC, whatever zone the datetime carries
    (the same instant in Paris and in New York must fingerprint alike)."""
    return moment.astimezone(UTC).isoformat() if moment else None


def signature_recorded(signature: SignatureManifestation) -> list[Any]:
    """A signature manifestation as the fingerprint holds it: what it prints (21 CFR 11.50), with
    the signing time in UTC instead of the facility's zone."""
    return [signature.signature_id, signature.printed_name, signature.username, signature.meaning,
            utc_iso(signature.signed_at), signature.valid]


@dataclass(frozen=True)
class _Registered:
    key: str
    order: int
    provider: SectionProvider


_registry: dict[str, _Registered] = {}


def section_provider(key: str, *, order: int) -> Callable[[SectionProvider], SectionProvider]:
    """Register `provider` under `key` at position `order` (lower comes first)."""

    def register(provider: SectionProvider) -> SectionProvider:
        _registry[key] = _Registered(key=key, order=order, provider=provider)
        return provider

    return register


def section_providers() -> list[tuple[str, int]]:
    _builtins_load()
    return [(r.key, r.order) for r in sorted(_registry.values(), key=lambda r: (r.order, r.key))]


def sections_collect(batch: Batch, record: BatchRecord) -> list[Section]:
    """Every provider's section for this batch, in order; providers with nothing to say are skipped."""
    _builtins_load()
    sections = []
    for registered in sorted(_registry.values(), key=lambda r: (r.order, r.key)):
        section = registered.provider(batch, record)
        if section is not None:
            sections.append(section)
    return sections


def _builtins_load() -> None:
    import ebr.pdf.providers  # noqa: F401  (the built-in providers register on import)
