"""Instrument accounts and the parameter registry.

An instrument authenticates with a bearer token that is shown once and stored only as its
SHA-256 (EU GMP Annex 11 §12: access restricted to authorised "persons", here machines;
21 CFR 11.10(d) and 11.300: unique, revocable credentials). Registration and revocation are
audit-trail events; the token never appears in the audit trail or in history.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from ebr.models import Equipment, Instrument, InstrumentParameter
from qms.audit import Event, create_with_reason, save_with_reason
from qms.audit.writer import Actor, actor_label
from qms.prepared import prepared_cursor

TOKEN_SCHEME = "ebr_"  # noqa: S105  (the visible start of every token, not a secret)
PREFIX_LENGTH = 12  # "ebr_" and 8 random characters: enough to find the row, useless to an attacker
LAST_USED_EVERY = timedelta(minutes=1)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_NO_MATCH = hashlib.sha256(b"no instrument").hexdigest()
INSTRUMENT_COLUMNS = [column.attname for column in Instrument._meta.concrete_fields]
# Names from the model, never from a request.
TOKEN_SQL = f"SELECT {', '.join(INSTRUMENT_COLUMNS)} FROM {Instrument._meta.db_table} WHERE token_prefix = %s"  # noqa: S608
TOKEN_HASH_COLUMN, REVOKED_COLUMN = INSTRUMENT_COLUMNS.index("token_hash"), INSTRUMENT_COLUMNS.index("revoked_at")


@dataclass(frozen=True)
class Registration:
    instrument: Instrument
    token: str  # shown once, never stored


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_new() -> str:
    return TOKEN_SCHEME + secrets.token_urlsafe(32)


@transaction.atomic
def instrument_register(*, actor: Actor, name: str, equipment: Equipment,
                        reason: str = "Instrument registered") -> Registration:
    """Register an instrument for one piece of equipment and issue its token (shown once).

    Readings follow the equipment's assignments to batches, so the equipment is fixed for the
    instrument's life; a different machine is a new registration.
    """
    name = (name or "").strip()
    if not NAME_PATTERN.match(name):
        raise ValidationError({"name": "Use 1 to 64 letters, digits, dots, dashes or underscores."})
    if Instrument.objects.filter(name__iexact=name).exists():  # BSC-CTL and bsc-ctl would be told apart by case only
        raise ValidationError({"name": f"An instrument named {name} is already registered."})
    token = token_new()
    instrument = create_with_reason(
        Instrument, actor=actor, reason=reason, event=Event.INSTRUMENT_REGISTERED,
        data={"equipment": equipment.code, "token_prefix": token[:PREFIX_LENGTH]},
        name=name, equipment=equipment, token_hash=token_digest(token), token_prefix=token[:PREFIX_LENGTH],
        registered_by=actor_label(actor))
    return Registration(instrument=instrument, token=token)


@transaction.atomic
def instrument_revoke(*, actor: Actor, instrument: Instrument, reason: str = "Token revoked") -> Instrument:
    """Revoke the instrument's token at once; its readings and history stay (ALCOA+ enduring)."""
    instrument = Instrument.objects.select_for_update().get(pk=instrument.pk)
    if instrument.revoked_at is not None:
        return instrument
    instrument.revoked_at = timezone.now()
    instrument.revoked_by = actor_label(actor)
    save_with_reason(instrument, actor=actor, reason=reason, event=Event.INSTRUMENT_REVOKED,
                     update_fields=["revoked_at", "revoked_by"])
    return instrument


def instrument_for_token(token: str) -> Instrument | None:
    """The active instrument holding `token`, or None; compared in constant time.

    The prefix only narrows the search; the decision is the SHA-256 comparison, done once even
    when no row matches so that unknown and wrong tokens take the same time. Runs on every
    instrument request, so the row is read by one plain query (the ORM's query building cost a
    tenth of a post's CPU); the equipment is loaded only when something asks for it.
    """
    digest = token_digest(token)
    rows = _token_rows(token[:PREFIX_LENGTH])
    found = None
    for row in rows:
        if hmac.compare_digest(row[TOKEN_HASH_COLUMN], digest):
            found = row
    if not rows:
        hmac.compare_digest(_NO_MATCH, digest)  # the same work when nothing matches the prefix
    if found is None or found[REVOKED_COLUMN] is not None:
        return None
    return Instrument.from_db(connection.alias, INSTRUMENT_COLUMNS, found)


def _token_rows(prefix: str) -> list[tuple[Any, ...]]:
    """The instruments whose token starts with `prefix`, read on a connection known to work.

    Django checks a kept connection with a `SELECT 1` before a request's first query
    (CONN_HEALTH_CHECKS): a round trip on every instrument post. The token read is that first
    query, and it only reads, so it checks the connection itself: when the kept connection has
    gone (a database restart, a dropped socket) it is read again once on a new one, as the health
    check would have done. Only then: inside a transaction, on a connection opened for this read
    (a failed connect is not tried twice), or when the connection still works (a lock or statement
    timeout), the error stands.
    """
    kept = connection.connection is not None and not connection.in_atomic_block
    if kept:
        connection.health_check_done = True  # type: ignore[attr-defined]  # Django ≥ 4.1; not in django-stubs
    try:
        return _token_read(prefix)
    except (OperationalError, InterfaceError):
        if not kept or connection.is_usable():
            raise
        connection.close()
        return _token_read(prefix)


def _token_read(prefix: str) -> list[tuple[Any, ...]]:
    with prepared_cursor() as cursor:
        cursor.execute(TOKEN_SQL, [prefix], prepare=True)
        return cursor.fetchall()


def instrument_used(instrument: Instrument) -> None:
    """Record when the token was last used, at most once a minute per instrument.

    Operational metadata, not GxP data: one conditional UPDATE outside history (the field is
    excluded from the instrument's history), so that a busy instrument costs no extra writes.
    """
    now = timezone.now()
    if instrument.last_used_at is not None and now - instrument.last_used_at < LAST_USED_EVERY:
        return
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ebr_instrument SET last_used_at = %s WHERE id = %s "
                       "AND (last_used_at IS NULL OR last_used_at < %s)",
                       [now, instrument.pk, now - LAST_USED_EVERY])
    instrument.last_used_at = now


@transaction.atomic
def instrument_parameter_add(*, actor: Actor, code: str, meaning: str, unit: str,
                             reason: str = "Parameter added to the registry") -> InstrumentParameter:
    """Add a parameter to the registry (data, not code); its unit must be a UCUM code.

    Existing parameters are never changed: readings already stored keep the unit they were
    accepted in (ALCOA+ consistent); a different unit is a new parameter code.
    """
    code, meaning, unit = (code or "").strip(), (meaning or "").strip(), (unit or "").strip()
    errors = {}
    if not CODE_PATTERN.match(code):
        errors["code"] = "Use a lower-case code of letters, digits and underscores, starting with a letter."
    elif InstrumentParameter.objects.filter(code=code).exists():
        errors["code"] = f"Parameter {code} already exists; a new unit needs a new code."
    if not meaning:
        errors["meaning"] = "Say what the parameter measures."
    if not unit or len(unit) > 32 or any(ch.isspace() for ch in unit):
        errors["unit"] = "Give the UCUM code of the unit, e.g. mmol/L, without spaces."
    if errors:
        raise ValidationError(errors)
    parameter = create_with_reason(InstrumentParameter, actor=actor, reason=reason,
                                   event=Event.INSTRUMENT_PARAMETER_ADDED, code=code, meaning=meaning, unit=unit)
    from ebr.services.readings import registry

    registry.forget()
    return parameter
