"""How a recorded old → new value reads: the stored value stays as written (UTC, database ids),
the reader sees the facility's time and the record's name (21 CFR 11.10(b): accurate and
complete copies in human-readable form).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, tzinfo
from typing import Any

from django.utils import timezone

EMPTY = "—"

# Words that read as initials, and events whose code does not read as a sentence.
_INITIALS = {"capa": "CAPA", "qa": "QA"}
_EVENT_WORDS = {
    "SESSION_ENDED_LOCKED": "Session ended: account locked",
    "SESSION_ENDED_PASSWORD_CHANGED": "Session ended: password changed elsewhere",
    "SESSION_ENDED_DEACTIVATED": "Session ended: account deactivated",
    "SESSION_ENDED_PASSWORD_RESET": "Session ended: password reset",
    "USER_ROLES_CHANGED": "User roles changed",
    "DEVIATION_CAPA_DECIDED": "Deviation CAPA decision recorded",
    "ENTRY_REFUSED": "Entry refused (scan)",
}


def event_label(code: str) -> str:
    """An audit event type as a reader says it ("CAPA action completed"); the stored code stays
    what filters, exports and the record format carry."""
    if code in _EVENT_WORDS:
        return _EVENT_WORDS[code]
    words = [_INITIALS.get(word, word) for word in code.lower().split("_")]
    return " ".join(words)[:1].upper() + " ".join(words)[1:] if words else code
# How audit/history.py stores a moment: str() of an aware datetime, in UTC (rows recorded before
# it converted to UTC may carry the facility's offset).
_STORED_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:\d{2}|Z)$")


def audit_value_display(value: Any, label: str | None = None, *, zone: tzinfo | None = None,
                        local: bool = True) -> str:
    """A stored value as a reader should see it: the related record's name recorded beside its
    id, a moment in the facility's zone (or ISO 8601 UTC when `local` is False, for exports
    meant for machines), yes/no, lists joined."""
    if label:
        return str(label)
    if value is None or value == "" or value == [] or value == {}:
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        if _STORED_MOMENT.match(value):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if not local:
                return moment.astimezone(UTC).isoformat()
            shown = moment.astimezone(zone or timezone.get_current_timezone())
            return f"{shown:%Y-%m-%d %H:%M:%S} {shown.tzname()}"
        return value
    if isinstance(value, list):
        return ", ".join(audit_value_display(item, zone=zone, local=local) for item in value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def field_label(target_type: str, field: str) -> str:
    """A changed field as a reader names it: the model field's verbose name ("from party"), the
    stored name with spaces where the model is unknown. The stored name stays in the CSV."""
    from django.apps import apps
    from django.core.exceptions import FieldDoesNotExist

    try:
        return str(apps.get_model(target_type)._meta.get_field(field).verbose_name)
    except (LookupError, ValueError, FieldDoesNotExist):
        return field.replace("_", " ")


def audit_change_display(change: dict[str, Any], *, zone: tzinfo | None = None,
                         local: bool = True, target_type: str = "") -> dict[str, str]:
    field = str(change.get("field", ""))
    return {"field": field, "label": field_label(target_type, field) if target_type else field,
            "old": audit_value_display(change.get("old"), change.get("old_label"), zone=zone, local=local),
            "new": audit_value_display(change.get("new"), change.get("new_label"), zone=zone, local=local)}
