"""Ingest of instrument readings (POST /api/v1/readings, specs/instrument-api.md).

The rules, in the order they are applied:
1. The body is JSON (NaN, Infinity, nesting deeper than 1,024 levels and a field given twice in
   one object are refused), an object with `readings` (1 to 5,000, more is 413) and an optional
   `batch`. A body that is
   right in every respect is decoded and checked by msgspec into typed columns in one pass in C
   (the fast path, nearly every post); any other body is parsed again by orjson and checked
   item by item, which finds and lists every problem (the full path). Both apply the same
   rules: the fast path accepts only what the full path accepts, tested side by side.
2. Every reading is checked before anything is stored; one bad reading refuses the whole
   request (400) with every problem listed as {index, field, message} (all-or-nothing, so an
   instrument never has to work out which half of its data was kept).
3. Each reading belongs to the batch its instrument's equipment was assigned to at `ts`
   (EquipmentUse); an explicit `batch` not assigned at `ts` is 403, no batch at all 422.
   A batch whose record is closed (released, rejected, aborted) takes no new readings: 409
   (EU GMP Annex 16 §1.7: the record QA certified does not change afterwards). A completed
   batch, or one in QA review, still takes readings measured while it ran (an instrument that
   was offline sends its buffer later; the original data belongs to the record), and the
   review flags them and release waits for a review that saw them.
4. (instrument, seq) identifies a reading: a re-sent reading is a duplicate, stored once; the
   same seq with other content is a conflict (409) and nothing of the request is stored.
5. Readings are stored set-based (a binary COPY; INSERT ... ON CONFLICT DO NOTHING when some
   were stored before), and the request body itself, compressed, with its SHA-256, in the same
   transaction: the original record
   (FDA Data Integrity and Compliance with CGMP, 2018, Q&A 1 and 10; ALCOA+ original,
   enduring; EU GMP Annex 11 §5 data exchange with built-in checks, §8.2 and §9).
6. Alarm evaluation (EU GMP Annex 15 §9, continuous monitoring) is queued through the outbox
   and runs after commit in Celery, so that a post is never slowed down by it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import re
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any, cast

import msgspec
import orjson
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ebr.models import BatchStatus, Instrument, InstrumentParameter, ReadingPost
from ebr.process_data import READINGS_FUTURE_TOLERANCE
from ebr.states import BATCH_CLOSED
from qms.outbox import enqueue, enqueue_for_new_row_sql
from qms.prepared import prepared_cursor

MAX_READINGS = 5000
FUTURE_TOLERANCE = READINGS_FUTURE_TOLERANCE
MAX_ERRORS = 100
STOPPED_AFTER_MAX_ERRORS = f"Stopped after {MAX_ERRORS} problems; fix these and send again."
MAX_SEQ = 2**63 - 1
# No process parameter comes near 10^15 in its unit (particle counts per m3 stay below 10^10). A
# bound keeps every stored value far from the float range, so that sums and means over any number
# of readings (plots, buckets, the PDF) cannot overflow: one 1e308 from a faulty instrument would
# otherwise break every later mean of its bucket for good, in an append-only table.
MAX_VALUE = 1e15
VALUE_RANGE = "value must be a finite number from -1e15 to 1e15 (no NaN, no Infinity)."
READING_FIELDS = frozenset({"seq", "ts", "parameter", "value", "unit"})
BODY_FIELDS = frozenset({"batch", "readings"})
BATCH_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,31}")
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})")
RFC3339_LINES = re.compile(f"(?:{RFC3339.pattern}\n)*{RFC3339.pattern}")
# RFC 3339 allows a leap second (23:59:60Z); no time type here holds one, and none is scheduled
# (the last was 2016; they end by 2035). Refused with a message that says so, not as "not valid".
LEAP_SECOND = ("ts names a leap second (:60), which cannot be stored; send it as second 59.999999 of that "
               "minute, or let the clock smear the leap second.")
NAIVE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?")

ALARMS_EVALUATE = "ebr.alarms_evaluate"  # the task, queued through the outbox with every post
POST_COLUMNS = """instrument_id, received_at, body_sha256, body, body_bytes, compression, readings, accepted,
                                 duplicates, first_ts, last_ts"""
# Re-sends and races: readings by one INSERT ... ON CONFLICT DO NOTHING in seq order, and the
# original body with how many of its readings were new, in one statement.
STORE_SQL = f"""
WITH post AS (SELECT nextval(pg_get_serial_sequence('ebr_readingpost', 'id')) AS id),
stored AS (
    INSERT INTO ebr_reading (instrument_id, post_id, batch_id, seq, ts, parameter_id, value, unit)
    SELECT %(instrument)s, post.id, r.batch_id, r.seq, r.ts, r.parameter_id, r.value, p.unit
      FROM post,
           unnest(%(batches)s::bigint[], %(seqs)s::bigint[], %(tss)s::timestamptz[], %(parameters)s::bigint[],
                  %(values)s::float8[]) AS r(batch_id, seq, ts, parameter_id, value)
      JOIN ebr_instrumentparameter p ON p.id = r.parameter_id
     ORDER BY r.seq
    ON CONFLICT (instrument_id, seq) DO NOTHING
    RETURNING 1),
original AS (
    INSERT INTO ebr_readingpost (id, {POST_COLUMNS})
    SELECT post.id, %(instrument)s, %(received_at)s, %(sha256)s, %(body)s, %(body_bytes)s, 'zlib',
           %(total)s, accepted.n, %(total)s - accepted.n, %(first_ts)s, %(last_ts)s
      FROM post, (SELECT count(*) AS n FROM stored) AS accepted
    RETURNING id, accepted)
SELECT id, accepted FROM original
"""  # noqa: S608 (constants only)
# New readings (nearly every post): the original body, then the readings by a binary COPY.
POST_SQL = f"""
INSERT INTO ebr_readingpost ({POST_COLUMNS})
VALUES (%(instrument)s, %(received_at)s, %(sha256)s, %(body)s, %(body_bytes)s, 'zlib', %(total)s, %(accepted)s,
        %(total)s - %(accepted)s, %(first_ts)s, %(last_ts)s)
RETURNING id
"""  # noqa: S608 (constants only)
# The post and its alarm evaluation's outbox row in one statement: one round trip fewer per post.
POST_EVALUATE_SQL = enqueue_for_new_row_sql(POST_SQL, task_name=ALARMS_EVALUATE, key="post_id")
COPY_SQL = ("COPY ebr_reading (instrument_id, post_id, batch_id, seq, ts, parameter_id, value, unit) "
            "FROM STDIN (FORMAT BINARY)")
COPY_TYPES = ["int8", "int8", "int8", "int8", "timestamptz", "int8", "float8", "text"]
READING_SEQ_UNIQUE = "reading_instrument_seq_unique"
# A post is first stored by COPY: nearly every post holds only new readings, and COPY writes them
# in batches (one WAL record per page, not per row) from binary values that need no parsing.
# Measured on PostgreSQL 15 per 1,000 readings: 5.4 ms of database and 1.6 ms of Python time,
# against 6.9 and 2.9 ms for one INSERT ... SELECT FROM unnest(...) of the same rows.
# When a seq is already stored (a re-send, or a concurrent post of the same readings) the unique
# index refuses the COPY, the transaction rolls back, and the post is stored again with
# STORE_SQL, which counts duplicates and finds conflicts.
# Both write readings in seq order, so that concurrent posts sharing seqs wait on each other in
# the same order and cannot deadlock. The unit stored is the registry's, which validation has
# required the reading to carry. STORE_SQL's columns travel as array literals built here
# (PostgreSQL parses them in C), several times faster than adapting Python lists value by value.
EXISTING_SQL = """
SELECT seq, batch_id, ts, parameter_id, value, unit FROM ebr_reading
 WHERE instrument_id = %s AND seq = ANY(%s::bigint[]) AND post_id <> %s
"""
# Shared row locks on the batches the equipment was assigned to over the post's span: a post and a
# release or completion (which lock the batch FOR UPDATE) wait for each other, so no reading lands
# in a record after the QP certified it. The assignments are read afterwards by their own statement,
# whose fresh snapshot sees what a completion that held the lock changed (its end of assignment).
# Locking the assignment rows in the same statement instead would deadlock with a completion, which
# locks the batch first and then updates the assignments.
OVERLAP = "u.equipment_id = %s AND u.started_at <= %s AND (u.ended_at IS NULL OR u.ended_at > %s)"
LOCK_SQL = f"""
SELECT b.id FROM ebr_batch b
 WHERE b.id IN (SELECT u.batch_id FROM ebr_equipmentuse u WHERE {OVERLAP})
 ORDER BY b.id
   FOR SHARE
"""  # noqa: S608 (constants only)
# The equipment's assignments overlapping the post, the latest first, with their batches' states.
USES_SQL = f"""
SELECT u.batch_id, u.started_at, u.ended_at, b.number, b.status
  FROM ebr_equipmentuse u JOIN ebr_batch b ON b.id = u.batch_id
 WHERE {OVERLAP}
 ORDER BY u.started_at DESC
"""  # noqa: S608 (constants only)
STORED_SEQS_SQL = "SELECT seq FROM ebr_reading WHERE instrument_id = %s AND seq = ANY(%s::bigint[])"
REGISTRY_TTL = 5.0  # seconds a web process keeps the parameter registry


def _array(values: Any) -> str:
    """A PostgreSQL array literal of numbers or timestamps (no element needs quoting)."""
    return "{" + ",".join(values) + "}"


class ReadingsRefused(Exception):
    """The request is refused as a whole; `errors` are {index, field, message} items."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{status}: {errors[:1]}")
        self.status = status
        self.errors = errors


def _error(index: int | None, field_name: str | None, message: str) -> dict[str, Any]:
    return {"index": index, "field": field_name, "message": message}


@dataclass
class Readings:
    """The request's readings as columns, in request order (one list per column)."""

    indexes: list[int] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    tss: list[datetime] = field(default_factory=list)
    parameter_ids: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    batch_ids: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.seqs)

    def content(self, position: int) -> tuple[Any, ...]:
        """What a seq stands for: a re-sent reading must match it exactly."""
        return (self.tss[position], self.parameter_ids[position], self.values[position], self.units[position])

    def keep(self, positions: list[int]) -> Readings:
        return Readings(indexes=[self.indexes[p] for p in positions], seqs=[self.seqs[p] for p in positions],
                        tss=[self.tss[p] for p in positions], parameter_ids=[self.parameter_ids[p] for p in positions],
                        values=[self.values[p] for p in positions], units=[self.units[p] for p in positions])


@dataclass(frozen=True)
class IngestResult:
    post_id: int
    accepted: int
    duplicates: int
    batch_ids: list[int]
    parameter_ids: list[int]

    @cached_property
    def post(self) -> ReadingPost:
        """The stored original (read on demand: the API answer does not need it)."""
        return ReadingPost.objects.get(pk=self.post_id)


# --- parsing --------------------------------------------------------------------------------

def _parse(body: bytes) -> tuple[str | None, list[Any]]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        _non_finite_refuse(body)
        raise ReadingsRefused(400, [_error(None, None, f"The body is not valid JSON: {error}")]) from None
    if type(document) is not dict:
        raise ReadingsRefused(400, [_error(None, None, "The body must be a JSON object with a readings list.")])
    readings = document.get("readings")
    if type(readings) is list and len(readings) > MAX_READINGS:
        raise ReadingsRefused(413, [_error(None, "readings", f"At most {MAX_READINGS} readings per request; "
                                                             f"this one has {len(readings)}.")])
    errors = [_error(None, name, "Unknown field.") for name in sorted(document.keys() - BODY_FIELDS)]
    if type(readings) is not list:
        errors.append(_error(None, "readings", "A list of readings is required."))
    elif not readings:
        errors.append(_error(None, "readings", "Send at least one reading."))
    batch = document.get("batch")
    if batch is not None and (type(batch) is not str or not BATCH_NUMBER.fullmatch(batch)):
        errors.append(_error(None, "batch", "The batch is a batch number, e.g. B-2026-0007."))
    if errors:
        raise ReadingsRefused(400, errors)
    _repeated_keys_refuse(body)
    return cast(str | None, batch), cast(list[Any], readings)


class _RepeatedKeys(dict[str, Any]):
    """A JSON object that named a key more than once (its keys in order of first repeat)."""

    repeated: list[str]


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) == len(pairs):
        return document
    flagged = _RepeatedKeys(document)
    seen: set[str] = set()
    flagged.repeated = []
    for key, _ in pairs:
        if key in seen and key not in flagged.repeated:
            flagged.repeated.append(key)
        seen.add(key)
    return flagged


def _repeated_keys_refuse(body: bytes) -> None:
    """A body or reading that names a field twice ({"value": 7.1, "value": 9.9}) is refused.

    JSON parsers disagree on which of the two counts (RFC 8259 §4); orjson and msgspec keep the
    last, a reviewer reading the kept original may take the first. The original record and the
    value stored must say the same thing (ALCOA+ accurate, consistent; I-JSON, RFC 7493 §2.3, makes
    unique names a must), so an ambiguous body is not stored at all. Run on the full path only,
    which reads the body a second time with the standard library to see every key; the fast path
    proves the absence of repeats by counting strings (`_readings_fast`).
    """
    try:
        document = json.loads(body, object_pairs_hook=_object_pairs)
    except (ValueError, RecursionError):
        return  # read by orjson but not here (nesting deeper than Python's limit): refused for its type anyway
    errors = [_error(None, key, f"{key} is given more than once; give each field once.")
              for key in getattr(document, "repeated", [])]
    items = document.get("readings") if isinstance(document, dict) else None
    for index, item in enumerate(items if isinstance(items, list) else []):
        errors += [_error(index, key, f"{key} is given more than once in this reading; give each field once.")
                   for key in getattr(item, "repeated", [])]
    if errors:
        if len(errors) > MAX_ERRORS:
            errors = [*errors[:MAX_ERRORS], _error(None, None, STOPPED_AFTER_MAX_ERRORS)]
        raise ReadingsRefused(400, errors)


# Bare NaN / Infinity, and numbers whose exponent puts them past the float range (1e400).
NON_FINITE = re.compile(rb"-?\b(?:NaN|Infinity)\b|[0-9][eE][+]?[0-9]{3,}")


def _non_finite_refuse(body: bytes) -> None:
    """A body that is JSON but for NaN or Infinity literals (what many JSON encoders write for
    non-finite floats, Python's among them) or numbers beyond the float range (1e400, valid JSON
    that no parser here can hold): refused with the readings and fields they are in, as any other
    bad value, so that an integrator sees which sensor sent them. Never stored: the body is only
    read here to name them, and the request is refused whatever else it holds."""
    if NON_FINITE.search(body) is None:
        return
    non_finite: list[str] = []

    def constant(name: str) -> float:
        non_finite.append(name)
        return math.nan

    try:
        document = json.loads(body, parse_constant=constant)
    except (ValueError, RecursionError):
        return
    items = document.get("readings") if type(document) is dict else None
    if type(items) is not list:
        return
    errors = [_error(index, name, VALUE_RANGE if name == "value" else f"{name} must be a finite number.")
              for index, item in enumerate(items[:MAX_READINGS]) if type(item) is dict
              for name, value in item.items() if type(value) is float and not math.isfinite(value)]
    if not errors and not non_finite:
        return  # something else orjson refused (an integer past 64 bits): its own message says what
    if len(errors) > MAX_ERRORS:
        errors = [*errors[:MAX_ERRORS],
                  _error(None, None, STOPPED_AFTER_MAX_ERRORS)]
    raise ReadingsRefused(400, errors or [_error(None, None, "The body holds NaN or Infinity, which JSON does not "
                                                            "allow; send finite numbers.")])


# --- the fast path: a body with nothing wrong ---------------------------------------------------

class _ReadingIn(msgspec.Struct, forbid_unknown_fields=True):
    seq: Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]
    ts: str
    parameter: str
    value: float  # a JSON integer too, as float(); out-of-range numbers (1e999) are refused
    unit: str


class _PostIn(msgspec.Struct, forbid_unknown_fields=True):
    readings: Annotated[list[_ReadingIn], msgspec.Meta(min_length=1, max_length=MAX_READINGS)]
    batch: str | msgspec.UnsetType | None = msgspec.UNSET  # UNSET: no "batch" key; None: "batch": null


_POST_DECODER = msgspec.json.Decoder(_PostIn)


def _readings_fast(body: bytes, registry: dict[str, tuple[int, str]],
                   now: datetime) -> tuple[str | None, Readings] | None:
    """The batch and the readings of a body with nothing wrong, or None for the full path.

    Types, field sets, counts and seq ranges are checked by msgspec while it decodes; what is left
    (time stamps, the parameter registry, the batch number) is checked once per distinct value, so
    that no Python code runs per reading except building the columns. Any doubt returns None: the
    full path then decides, and says why.
    """
    try:
        post = _POST_DECODER.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):  # ValidationError is a DecodeError
        return None
    batch = None if post.batch is msgspec.UNSET else post.batch
    if batch is not None and not BATCH_NUMBER.fullmatch(batch):
        return None
    items = post.readings
    # No key named twice (the full path would refuse it; msgspec keeps the last): decoded, every
    # reading holds exactly 8 strings (5 keys, ts, parameter, unit) and the body 1 more ("readings"),
    # 1 for "batch": null and 2 for a batch number. A repeated key adds at least one string, and
    # nothing else can (unknown fields and other types are refused by the decoder; a quote inside a
    # string is escaped, which only adds quotes), so counting the quotes settles it.
    strings = 8 * len(items) + 1 + (0 if post.batch is msgspec.UNSET else 1 if batch is None else 2)
    if body.count(b'"') != 2 * strings:
        return None
    moments = _moments_fast({item.ts for item in items}, now)
    if moments is None:
        return None
    for code, unit in {(item.parameter, item.unit) for item in items}:
        known = registry.get(code)
        if known is None or unit != known[1]:
            return None
    values = [item.value for item in items]
    if not all(map(math.isfinite, values)) or min(values) < -MAX_VALUE or max(values) > MAX_VALUE:
        return None
    return batch, Readings(
        indexes=list(range(len(items))), seqs=[item.seq for item in items], tss=[moments[item.ts] for item in items],
        parameter_ids=[registry[item.parameter][0] for item in items], values=values,
        units=[item.unit for item in items])


def _moments_fast(stamps: set[str], now: datetime) -> dict[str, datetime] | None:
    """{ts: UTC moment} when every distinct ts is an RFC 3339 date-time with a zone, in range.

    The same rules as `_timestamp`, checked in one regular-expression match over all of them
    (a post has hundreds of distinct time stamps) instead of one call each.
    """
    distinct = list(stamps)
    joined = "\n".join(distinct)
    if joined.count("\n") != len(distinct) - 1 or not RFC3339_LINES.fullmatch(joined):
        return None  # a ts with a line break of its own, or one that is not RFC 3339 with a zone
    try:
        parsed = [datetime.fromisoformat(stamp).astimezone(UTC) for stamp in joined.upper().split("\n")]
    except (ValueError, OverflowError):
        return None
    if min(parsed) < now - settings.INSTRUMENT_MAX_AGE or max(parsed) > now + FUTURE_TOLERANCE:
        return None
    return dict(zip(distinct, parsed, strict=True))


# --- validation (all-or-nothing) ------------------------------------------------------------

def _timestamp(raw: Any, earliest: datetime, latest: datetime) -> datetime | str:
    """The moment `raw` names, or the message saying why it is refused."""
    if type(raw) is not str:
        return "ts must be a string: an RFC 3339 date-time with a time zone."
    if not RFC3339.fullmatch(raw):
        if NAIVE.fullmatch(raw):
            return "ts needs a time zone (RFC 3339), e.g. 2026-11-27T09:00:05Z."
        return "ts is not an RFC 3339 date-time, e.g. 2026-11-27T09:00:05Z."
    try:
        # In UTC from here on: PostgreSQL refuses zone offsets beyond 15:59 that RFC 3339 allows.
        moment = datetime.fromisoformat(raw.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        if raw[17:19] == "60":
            return LEAP_SECOND
        return "ts is not a valid date and time."
    if moment > latest:
        return "ts is more than 5 minutes in the future."
    if moment < earliest:
        return f"ts is more than {settings.INSTRUMENT_MAX_AGE.days} days old."
    return moment


def _value(raw: Any) -> float | None:
    kind = type(raw)
    if kind is float or kind is int:
        return float(raw) if -MAX_VALUE <= raw <= MAX_VALUE else None  # NaN fails both comparisons
    return None  # bool, string, null, object: refused


def _field_set_errors(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    keys = item.keys()
    return ([_error(index, name, "This field is required.") for name in sorted(READING_FIELDS - keys)]
            + [_error(index, name, "Unknown field.") for name in sorted(keys - READING_FIELDS)])


def _reading_errors(index: int, item: Any, moment: datetime | str | None,
                    registry: dict[str, tuple[int, str]]) -> list[dict[str, Any]]:
    """Every problem of one refused reading (the slow path: only for bad readings)."""
    if type(item) is not dict:
        return [_error(index, None, "Each reading is a JSON object.")]
    if item.keys() != READING_FIELDS:
        return _field_set_errors(index, item)
    problems = []
    seq = item["seq"]
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        problems.append(_error(index, "seq", "seq is a whole number from 0 to 2^63-1."))
    if type(moment) is str:
        problems.append(_error(index, "ts", moment))
    if _value(item["value"]) is None:
        problems.append(_error(index, "value", VALUE_RANGE))
    code, unit = item["parameter"], item["unit"]
    known = registry.get(code) if type(code) is str else None
    if known is None:
        problems.append(_error(index, "parameter",
                               f"Unknown parameter {str(code)[:40]!r}; see the parameter registry."))
    elif unit != known[1]:
        problems.append(_error(index, "unit", f"The unit of {code} is {known[1]} (UCUM)."))
    return problems


def _validate(items: list[Any], registry: dict[str, tuple[int, str]], now: datetime) -> Readings:
    earliest, latest = now - settings.INSTRUMENT_MAX_AGE, now + FUTURE_TOLERANCE
    parsed: dict[str, datetime | str] = {}
    readings, errors = Readings(), cast(list[dict[str, Any]], [])
    for index, item in enumerate(items):
        moment: datetime | str | None = None
        if type(item) is dict and item.keys() == READING_FIELDS:
            raw_ts, seq, value, known = item["ts"], item["seq"], item["value"], None
            if type(raw_ts) is str:
                moment = parsed.get(raw_ts)
                if moment is None:
                    moment = parsed[raw_ts] = _timestamp(raw_ts, earliest, latest)
            else:
                moment = _timestamp(raw_ts, earliest, latest)
            code = item["parameter"]
            if type(code) is str:
                known = registry.get(code)
            kind = type(value)
            # The fast path: a good reading is checked in one expression and stored as columns.
            if (type(seq) is int and 0 <= seq <= MAX_SEQ and type(moment) is datetime and known is not None
                    and item["unit"] == known[1] and (kind is int or kind is float)
                    and -MAX_VALUE <= value <= MAX_VALUE):
                if not errors:
                    readings.indexes.append(index)
                    readings.seqs.append(seq)
                    readings.tss.append(moment)
                    readings.parameter_ids.append(known[0])
                    readings.values.append(float(value))
                    readings.units.append(known[1])
                continue
        errors.extend(_reading_errors(index, item, moment, registry))
        if len(errors) >= MAX_ERRORS:
            errors.append(_error(None, None, STOPPED_AFTER_MAX_ERRORS))
            break
    if errors:
        raise ReadingsRefused(400, errors)
    return readings


class _Registry:
    """The parameter registry as {code: (id, unit)}, read at most every REGISTRY_TTL seconds.

    A parameter added by `instrument_parameter_add` is accepted at once by the process that added
    it and within REGISTRY_TTL seconds by every other; parameters are never changed or removed.
    """

    def __init__(self) -> None:
        self.read_at, self.codes = -REGISTRY_TTL, {}  # type: tuple[float, dict[str, tuple[int, str]]]

    def get(self) -> dict[str, tuple[int, str]]:
        if time.monotonic() - self.read_at >= REGISTRY_TTL:
            rows = InstrumentParameter.objects.values_list("pk", "code", "unit")
            self.codes = {code: (pk, unit) for pk, code, unit in rows}
            self.read_at = time.monotonic()
        return self.codes

    def forget(self) -> None:
        self.read_at = -REGISTRY_TTL


registry = _Registry()


def _same_seq_once(readings: Readings) -> tuple[Readings, int]:
    """Repeats of a seq inside one request: identical ones count as duplicates, others conflict."""
    if len(set(readings.seqs)) == len(readings):
        return readings, 0
    first: dict[int, int] = {}
    keep, conflicts = [], []
    for position, seq in enumerate(readings.seqs):
        prior = first.get(seq)
        if prior is None:
            first[seq] = position
            keep.append(position)
        elif readings.content(prior) != readings.content(position):
            conflicts.append(_error(readings.indexes[position], "seq",
                                    f"seq {seq} is also at index {readings.indexes[prior]} with other content."))
    if conflicts:
        raise ReadingsRefused(409, conflicts[:MAX_ERRORS])
    if len(keep) == len(readings):
        return readings, 0
    return readings.keep(keep), len(readings) - len(keep)


# --- attribution to batches -----------------------------------------------------------------

@dataclass(frozen=True)
class Use:
    """An assignment of the instrument's equipment to a batch (EquipmentUse), with the batch's state."""

    batch_id: int
    started_at: datetime
    ended_at: datetime | None
    batch_number: str
    batch_status: str

    def covers(self, moment: datetime) -> bool:
        return self.started_at <= moment and (self.ended_at is None or moment < self.ended_at)


def _uses(cursor: Any, instrument: Instrument, earliest: datetime, latest: datetime) -> list[Use]:
    """The equipment's assignments overlapping [earliest, latest], the latest first; their batches
    are locked FOR SHARE until the post commits."""
    window = [instrument.equipment_id, latest, earliest]
    locked: set[int] = set()
    while True:
        cursor.execute(LOCK_SQL, window, prepare=True)
        locked.update(row[0] for row in cursor.fetchall())
        cursor.execute(USES_SQL, window, prepare=True)
        uses = [Use(*row) for row in cursor.fetchall()]
        if {use.batch_id for use in uses} <= locked:
            return uses
        # An assignment made meanwhile names a batch not yet locked: lock it too and read again.


def _attribute(readings: Readings, uses: list[Use], instrument: Instrument, batch_number: str | None) -> None:
    """Each reading's batch: the one its equipment was assigned to at `ts` (403/422 otherwise)."""
    explicit = None
    if batch_number is not None:
        # A batch the equipment was never assigned to in the post's span matches no use: 403 below.
        explicit = next((use.batch_id for use in uses if use.batch_number == batch_number), -1)
    latest = uses[0] if uses else None
    if latest is not None and latest.covers(min(readings.tss)) and latest.covers(max(readings.tss)) \
            and explicit in (None, latest.batch_id):
        # The usual case: one assignment covers the whole post.
        readings.batch_ids = [latest.batch_id] * len(readings)
        return
    readings.batch_ids = []
    at: dict[datetime, list[int]] = {}
    outside, unassigned = [], []
    for position, moment in enumerate(readings.tss):
        batches = at.get(moment)
        if batches is None:
            batches = at[moment] = [use.batch_id for use in uses if use.covers(moment)]
        if explicit is not None:
            if explicit not in batches:
                outside.append(position)
            readings.batch_ids.append(explicit)
        elif batches:
            readings.batch_ids.append(batches[0])
        else:
            unassigned.append(position)
            readings.batch_ids.append(0)
    equipment = instrument.equipment.code
    if outside:
        raise ReadingsRefused(403, [_error(readings.indexes[p], "batch", f"{equipment} was not assigned to batch "
                                           f"{batch_number} at {readings.tss[p].isoformat()}.")
                                    for p in outside[:MAX_ERRORS]])
    if unassigned:
        raise ReadingsRefused(422, [_error(readings.indexes[p], "ts", f"{equipment} was not assigned to any batch "
                                           f"at {readings.tss[p].isoformat()}.") for p in unassigned[:MAX_ERRORS]])


# --- storage --------------------------------------------------------------------------------

def _conflicts(cursor: Any, instrument: Instrument, post_id: int, readings: Readings) -> list[dict[str, Any]]:
    cursor.execute(EXISTING_SQL, [instrument.pk, _array(map(str, readings.seqs)), post_id])
    position_of = {seq: position for position, seq in enumerate(readings.seqs)}
    conflicts = []
    for seq, *stored in cursor.fetchall():
        position = position_of[seq]
        if tuple(stored) != (readings.batch_ids[position], *readings.content(position)):
            conflicts.append(_error(readings.indexes[position], "seq",
                                    f"seq {seq} was already received with other content."))
    return conflicts


def _ensure_records_open(cursor: Any, instrument: Instrument, readings: Readings, uses: list[Use]) -> None:
    """New readings only for batches whose record is still open; re-sent ones stay duplicates."""
    attributed = set(readings.batch_ids)
    closed = {use.batch_id: f"Batch {use.batch_number} is {BatchStatus(use.batch_status).label.lower()}: its record "
                            "is closed and takes no new readings."
              for use in uses if use.batch_id in attributed and use.batch_status in BATCH_CLOSED}
    if not closed:
        return
    positions = [position for position, batch_id in enumerate(readings.batch_ids) if batch_id in closed]
    cursor.execute(STORED_SEQS_SQL, [instrument.pk, _array(str(readings.seqs[p]) for p in positions)])
    stored = {row[0] for row in cursor.fetchall()}
    refused = [p for p in positions if readings.seqs[p] not in stored]
    if refused:
        raise ReadingsRefused(409, [
            _error(readings.indexes[p], "batch", closed[readings.batch_ids[p]]) for p in refused[:MAX_ERRORS]])


def _store(instrument: Instrument, body: bytes, readings: Readings, batch_number: str | None,
           received_at: datetime, repeats: int) -> IngestResult:
    try:
        return _store_once(instrument, body, readings, batch_number, received_at, repeats, all_new=True)
    except IntegrityError as error:
        if getattr(getattr(error.__cause__, "diag", None), "constraint_name", None) != READING_SEQ_UNIQUE:
            raise
        return _store_once(instrument, body, readings, batch_number, received_at, repeats, all_new=False)


def _store_once(instrument: Instrument, body: bytes, readings: Readings, batch_number: str | None,
                received_at: datetime, repeats: int, *, all_new: bool) -> IngestResult:
    """Store the post in one transaction: by COPY when `all_new`, else by INSERT ... ON CONFLICT."""
    first_ts, last_ts = min(readings.tss), max(readings.tss)
    original = {"instrument": instrument.pk, "received_at": received_at, "sha256": hashlib.sha256(body).hexdigest(),
                "body": zlib.compress(body, 1), "body_bytes": len(body), "total": len(readings) + repeats,
                "first_ts": first_ts, "last_ts": last_ts}
    with transaction.atomic(), prepared_cursor() as cursor:
        uses = _uses(cursor, instrument, first_ts, last_ts)
        _attribute(readings, uses, instrument, batch_number)
        _ensure_records_open(cursor, instrument, readings, uses)
        if all_new:
            cursor.execute(POST_EVALUATE_SQL, {**original, "accepted": len(readings), "queued_at": timezone.now()},
                           prepare=True)
            post_id, accepted = _returned(cursor)[0], len(readings)
            _copy(instrument, post_id, readings)
        else:
            stamps = {moment: moment.isoformat() for moment in set(readings.tss)}
            cursor.execute(STORE_SQL, {
                **original, "batches": _array(map(str, readings.batch_ids)), "seqs": _array(map(str, readings.seqs)),
                "tss": _array([stamps[moment] for moment in readings.tss]),
                "parameters": _array(map(str, readings.parameter_ids)), "values": _array(map(repr, readings.values))})
            post_id, accepted = _returned(cursor)
            if accepted < len(readings):
                conflicts = _conflicts(cursor, instrument, post_id, readings)
                if conflicts:
                    raise ReadingsRefused(409, conflicts[:MAX_ERRORS])  # rolls back the readings and the post
            if accepted:
                enqueue(ALARMS_EVALUATE, post_id=post_id)
    return IngestResult(post_id=post_id, accepted=accepted, duplicates=len(readings) - accepted + repeats,
                        batch_ids=sorted(set(readings.batch_ids)), parameter_ids=sorted(set(readings.parameter_ids)))


def _returned(cursor: Any) -> tuple[Any, ...]:
    """The row an INSERT … RETURNING answered (always one: it inserts the post)."""
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError("the post was not stored")  # not reached: the INSERT either returns or raises
    return tuple(row)


def _copy(instrument: Instrument, post_id: int, readings: Readings) -> None:
    """COPY the readings in seq order (a duplicate seq raises IntegrityError, as an INSERT would)."""
    rows: Iterator[tuple[Any, ...]] = zip(readings.batch_ids, readings.seqs, readings.tss, readings.parameter_ids,
                                          readings.values, readings.units, strict=True)
    if readings.seqs != sorted(readings.seqs):
        rows = iter(sorted(rows, key=lambda row: row[1]))
    head = (instrument.pk, post_id)
    # On the driver's connection: Django's cursor has no COPY. Its errors still become Django's.
    with connection.wrap_database_errors, connection.connection.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
        copy.set_types(COPY_TYPES)
        for row in rows:
            copy.write_row(head + row)


def readings_ingest(*, instrument: Instrument, body: bytes, received_at: datetime | None = None) -> IngestResult:
    """Validate and store one post of readings from `instrument`, all or nothing.

    Raises ReadingsRefused(status, errors) with 400, 403, 409 (seq conflict, closed record), 413 or
    422; on success the
    readings, the original body and the alarm-evaluation work are committed together.
    """
    received_at = received_at or timezone.now()
    with _collector_paused():
        codes = registry.get()
        fast = _readings_fast(body, codes, received_at)
        if fast is None:
            batch_number, items = _parse(body)
            readings = _validate(items, codes, received_at)
            del items
        else:
            batch_number, readings = fast
        readings, repeats = _same_seq_once(readings)
    return _store(instrument, body, readings, batch_number, received_at, repeats)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a body is parsed and checked.

    A post of 5,000 readings allocates some 30,000 short-lived objects without a single reference
    cycle (reference counting frees them); left on, the collector would run full passes over the
    whole application heap in the middle of it. Measured: about a third of the CPU time of a post.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
