"""The batch's full audit trail, for the PDF appendix (21 CFR 11.10(e), EU GMP Annex 11 §9).

"Full" means every event whose target is the batch or a row that belongs to it: its steps,
entries (including corrections), chain-of-custody events, equipment and material uses, process
alarms and their acknowledgements, instrument posts of the batch whose alarm evaluation came late
or was set aside (the set `ebr.selectors.batch_audit_events` gives the batch's
audit-trail screen), plus the events of the deviations raised against it. Export events
(EXPORT_CREATED) are reads of the record, not changes to it; they stay in the audit trail (the
screen shows them) but are left out of the document so that the same record always yields the
same document content and fingerprint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from ebr.models import Batch
from ebr.pdf.sections import signature_recorded, utc_iso
from ebr.selectors import batch_audit_events
from qms.audit import Event
from qms.audit.display import audit_value_display
from qms.models import AuditEvent, Signature
from qms.signatures import SignatureManifestation, manifestation

LEFT_OUT = (Event.EXPORT_CREATED.value,)


@dataclass(frozen=True)
class AuditLine:
    id: int
    occurred_at: datetime
    occurred_at_display: str
    actor: str
    event_type: str
    target_type: str
    target_id: str
    target_label: str
    reason: str
    details: str  # as printed: moments in the facility's zone, related records by name
    signature: str  # as printed: signed in the facility's zone
    details_recorded: str = ""  # as stored: what the fingerprint covers
    signature_recorded: list[Any] | None = None  # as stored (`sections.signature_recorded`): what it covers

    def content(self) -> list[Any]:
        """What enters the record fingerprint: the time, details and signature as stored (UTC, ids),
        so that neither the facility's zone nor a change in how values are printed changes it."""
        return [self.id, utc_iso(self.occurred_at), self.actor, self.event_type, self.target_type, self.target_id,
                self.reason, self.details_recorded, self.signature_recorded]


def _events(batch: Batch) -> QuerySet[AuditEvent]:
    """The batch's events, the same set as its audit-trail screen (its deviations, their impact
    assessments and CAPAs, its review flags included: qms/audit/parts.py)."""
    return batch_audit_events(batch).exclude(event_type__in=LEFT_OUT)


def _details(data: dict[str, Any], shown: Callable[[Any, str | None], str]) -> str:
    """Changes as `field: old → new`; a creation's starting values as `field=value`; then the
    event's data, each value as `shown` writes it."""
    changes = [c for c in data.get("changes", []) or [] if isinstance(c, dict)]
    parts = []
    if changes and all(c.get("old") in (None, "") for c in changes):
        parts.append("Created with " + ", ".join(f"{c.get('field')}={shown(c.get('new'), c.get('new_label'))}"
                                                 for c in changes))
    elif changes:
        parts.append("; ".join(f"{c.get('field')}: {shown(c.get('old'), c.get('old_label'))} → "
                               f"{shown(c.get('new'), c.get('new_label'))}" for c in changes))
    rest = {k: v for k, v in data.items() if k not in {"changes", "signature"}}
    if rest:
        parts.append(", ".join(f"{k}={shown(v, None)}" for k, v in sorted(rest.items())))
    return "\n".join(parts)


def _stored(value: Any, _label: str | None = None) -> str:
    """A value as stored (UTC, ids), for the fingerprint. Details have entered it in this form
    since ebr-batch-record-pdf/1; /2 brought the row's time and signature to the same form (see
    ebr/pdf/content.py)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _manifestation(signature: Signature | None,
                   known: dict[int, SignatureManifestation]) -> SignatureManifestation | None:
    if signature is None:
        return None
    return known.get(signature.pk) or manifestation(signature)


def _signature_text(signature: SignatureManifestation | None) -> str:
    if signature is None:
        return ""
    return (f"{signature.meaning} by {signature.printed_name} ({signature.username}) "
            f"{signature.signed_at_display}, {'valid' if signature.valid else 'INVALID: record changed after signing'}")


def _local(moment: datetime, zone: tzinfo) -> str:
    """qms.signatures.format_local with the zone looked up once, for thousands of rows."""
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def batch_audit_trail(batch: Batch, manifestations: Iterable[SignatureManifestation] = ()) -> list[AuditLine]:
    """Every audit event of the batch and its rows, oldest first.

    `manifestations` are the signatures the batch record already evaluated (their validity is
    not recomputed per audit row); others (e.g. on a deviation) are evaluated here.
    """
    events = list(_events(batch).order_by("id").values_list(
        "id", "occurred_at", "actor_label", "event_type", "target_type", "target_id", "target_label", "reason", "data"))
    signature_ids = {int(data["signature"]) for *_, data in events if isinstance(data, dict) and data.get("signature")}
    signatures = {s.pk: s for s in Signature.objects.filter(pk__in=signature_ids)} if signature_ids else {}
    known = {m.signature_id: m for m in manifestations}
    zone = timezone.get_current_timezone()
    lines = []
    for pk, occurred, actor, event_type, target_type, target_id, label, reason, data in events:
        data = data if isinstance(data, dict) else {}
        signature = _manifestation(signatures.get(int(data.get("signature") or 0)), known)
        lines.append(AuditLine(
            id=pk, occurred_at=occurred, occurred_at_display=_local(occurred, zone), actor=actor,
            event_type=event_type, target_type=target_type, target_id=target_id, target_label=label,
            reason=reason, details=_details(data, lambda value, label: audit_value_display(value, label, zone=zone)),
            details_recorded=_details(data, _stored), signature=_signature_text(signature),
            signature_recorded=signature_recorded(signature) if signature else None))
    return lines
