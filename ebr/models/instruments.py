"""Instruments and the process data they send: registry, tokens, readings, original posts, alarms.

Data integrity frame: the request body an instrument sent is the original record (FDA Data
Integrity and Compliance with CGMP, Q&A 2018, on original records and true copies; ALCOA+
"original"); it is kept, compressed, with its SHA-256, in an append-only, hash-chained table.
Readings are the structured copy used for queries, plots and alarms; they are append-only too
and each one points to the post it came from, so any value can be traced to its original.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from ebr.models.batches import Batch, StepExecution
from ebr.models.resources import Equipment
from ebr.units import unit_display


class InstrumentParameter(models.Model):
    """The parameter registry: what an instrument may report, and in which UCUM unit.

    Data, not code: a facility adds a parameter (through `instrument_parameter_add`) without a
    software change; the initial 13 come from migration 0004.
    """

    code = models.SlugField(max_length=40, unique=True, help_text="Key in the API, e.g. ph, do, vcd.")
    meaning = models.CharField(max_length=200)
    unit = models.CharField(max_length=32, help_text="UCUM code, e.g. [pH], %, Cel, 10*6/mL.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        shown = unit_display(self.unit)
        return f"{self.code} ({shown})" if shown else self.code


class Instrument(models.Model):
    """A machine client (bioreactor, counter, particle counter) bound to one piece of equipment.

    Only the SHA-256 of its token is stored; the token itself is shown once at registration.
    `last_used_at` is operational metadata, written at most once a minute and outside history.
    """

    name = models.CharField(max_length=64, unique=True)
    equipment = models.ForeignKey(Equipment, on_delete=models.PROTECT, related_name="instruments")
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(max_length=16, db_index=True, help_text="First characters of the token.")
    created_at = models.DateTimeField(auto_now_add=True)
    registered_by = models.CharField(max_length=150, help_text="Who registered it (user or system label).")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(excluded_fields=["last_used_at"])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def actor_label(self) -> str:
        return f"instrument:{self.name}"


class ReadingPost(models.Model):
    """One accepted POST /api/v1/readings exactly as received: the original record.

    Append-only and hash-chained (qms.audit.dbtriggers). `body` is the zlib-compressed request
    body, `body_sha256` the digest of the uncompressed bytes; `original()` gives them back. The
    column is stored EXTERNAL (migration ebr/0013): PostgreSQL does not try to compress it again.
    """

    id = models.BigAutoField(primary_key=True)
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="posts", db_index=False)
    received_at = models.DateTimeField()
    body_sha256 = models.CharField(max_length=64)
    body = models.BinaryField()
    body_bytes = models.PositiveIntegerField(help_text="Size of the original body, uncompressed.")
    compression = models.CharField(max_length=8, default="zlib")
    readings = models.PositiveIntegerField(help_text="Readings in the body.")
    accepted = models.PositiveIntegerField(help_text="Readings stored by this post.")
    duplicates = models.PositiveIntegerField(help_text="Readings already stored by an earlier post.")
    first_ts = models.DateTimeField(null=True)
    last_ts = models.DateTimeField(null=True)

    class Meta:
        indexes = [models.Index(fields=["instrument", "received_at"], name="reading_post_instrument_idx"),
                   # Posts arrive in time order: a BRIN index finds the last hours' posts in a few pages
                   # (ebr.services.alarms.alarms_evaluate_overdue).
                   BrinIndex(fields=["received_at"], name="reading_post_received_brin")]

    def __str__(self) -> str:
        return f"post {self.pk} from {self.instrument_id} at {self.received_at:%Y-%m-%d %H:%M:%S}"

    def original(self) -> bytes:
        """The request body as the instrument sent it, byte for byte."""
        return zlib.decompress(bytes(self.body))


class Reading(models.Model):
    """One value from an instrument: (instrument, seq) is unique; never updated or deleted.

    Written only by `ebr.services.readings.readings_ingest`, set-based, never row by row: one
    binary COPY per post, or one INSERT ... ON CONFLICT DO NOTHING when some of its readings were
    stored before. Append-only in the database
    (UPDATE, DELETE, TRUNCATE refused) but not hash-chained row by row: measured on PostgreSQL 15,
    COPY of 50,000 rows into a copy of this table ran at 49,000-66,000 rows/s plain and 6,400
    rows/s with the per-row chain trigger, every writer of the whole system queued on the chain's
    one lock meanwhile. The chained ReadingPost each reading points to protects the content
    instead: its original body, whose digest is in the chain, holds every value.

    Indexes: BRIN on ts (tiny, for time-range scans over the whole table), B-tree on
    (batch, parameter, ts) for the batch page and the API, unique (instrument, seq) for
    idempotency. Foreign keys carry no extra indexes: each write pays for three indexes only.

    The foreign keys are not database constraints. A constraint check locks the parent row
    (the batch, the parameter, the instrument, the post) FOR KEY SHARE once per reading, so
    concurrent posts for one batch queue on the same rows: measured, a 1,000-row insert took
    125-145 ms with the four constraints and 30-40 ms without. Integrity holds without them: the
    only writer takes the batch and post ids from rows it has just read or written in the same
    transaction and the parameter ids from the registry, the parents are never deleted (PROTECT;
    posts and the parameter registry are append-only in the database) and
    `readings_orphaned()` (ebr.process_data) proves it on demand.

    Partitioning plan, for a site that outgrows one table (roughly beyond 10^9 rows, or once the
    (batch, parameter, ts) index no longer fits in memory; a bioreactor sending 5 parameters a
    minute adds ~2.6 million rows a year):
      1. Create `ebr_reading_p` PARTITION BY RANGE (ts) with monthly partitions
         (ebr_reading_y2027m01 ...), created ahead by a beat task; the same BRIN and
         (batch, parameter, ts) indexes on each partition; the append-only triggers on the
         parent (row triggers are inherited since PostgreSQL 13) and TRUNCATE triggers on
         every partition.
      2. A partitioned table's unique keys must contain the partition key, so global
         idempotency on (instrument, seq) moves to a narrow, unpartitioned key table
         `ebr_readingkey (instrument_id, seq) PRIMARY KEY, ts`: the ingest statement becomes
         one CTE that inserts keys ON CONFLICT DO NOTHING and inserts the readings whose keys
         were new (still one set-based statement per post).
      3. Copy old rows month by month (INSERT ... SELECT, verified by count and a checksum
         per month), swap the names in one transaction, keep the old table read-only until the
         next periodic review signs off.
      4. Closed months stay attached for the retention period (EC GMP for ATMPs: 30 years);
         old partitions can move to cheaper tablespaces, never be detached and dropped.
    """

    id = models.BigAutoField(primary_key=True)
    # No database foreign-key constraints here, on purpose (see the class docstring).
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+", db_index=False,
                                   db_constraint=False)
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="readings", db_index=False,
                              db_constraint=False)
    parameter = models.ForeignKey(InstrumentParameter, on_delete=models.PROTECT, related_name="+", db_index=False,
                                  db_constraint=False)
    post = models.ForeignKey(ReadingPost, on_delete=models.PROTECT, related_name="+", db_index=False,
                             db_constraint=False)
    seq = models.BigIntegerField()
    ts = models.DateTimeField()
    value = models.FloatField()
    unit = models.CharField(max_length=32)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["instrument", "seq"], name="reading_instrument_seq_unique")]
        indexes = [
            BrinIndex(fields=["ts"], name="reading_ts_brin"),
            models.Index(fields=["batch", "parameter", "ts"], name="reading_batch_parameter_ts_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id}#{self.seq} {self.parameter_id}={self.value}"


class EvaluationWatchMark(models.Model):
    """How far back the overdue-evaluation watch looks: every accepted post received before
    `received_before` has been evaluated, or set aside after failing (EvaluationFailure;
    ebr.services.alarms.alarms_evaluate_overdue).

    Operational state of the watch, not a record: it only moves forward, and losing it makes the
    watch start again from its default window.
    """

    name = models.CharField(max_length=40, primary_key=True)
    received_before = models.DateTimeField()
    moved_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}: evaluated before {self.received_before:%Y-%m-%d %H:%M:%S}"


class EvaluatedUntil(models.Model):
    """The latest reading time evaluated for alarms, per (batch, instrument, parameter).

    A post's readings before it arrive late (ebr.services.alarms): written under the
    instrument's alarm lock in the evaluation's transaction, so it is exact, and one lookup per
    post tells the usual in-order evaluation from a late one.
    """

    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="+")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    parameter = models.ForeignKey(InstrumentParameter, on_delete=models.PROTECT, related_name="+")
    ts = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["instrument", "batch", "parameter"],
                                               name="evaluated_until_unique")]

    def __str__(self) -> str:
        return f"{self.instrument_id}/{self.batch_id}/{self.parameter_id} evaluated until {self.ts:%Y-%m-%d %H:%M:%S}"


class EvaluationFailure(models.Model):
    """A post whose alarm evaluation failed, and how often (ebr.services.alarms).

    Operational state of the evaluator, not a record: after EVALUATION_ATTEMPTS failures the
    overdue watch sets the post aside (it no longer holds the watch's mark, and is tried again
    once an hour); the post still holds back its batch's release until it is evaluated.
    """

    post = models.OneToOneField(ReadingPost, on_delete=models.PROTECT, primary_key=True, related_name="+")
    attempts = models.PositiveIntegerField(default=0)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"post {self.post_id}: evaluation failed {self.attempts} time(s)"


class ReadingPostEvaluation(models.Model):
    """Marks a post whose readings were evaluated for alarms: evaluation runs once per post.

    Written in the same transaction as the alarms it caused, so a re-delivered task (the outbox
    sends at least once) finds the mark and does nothing.
    """

    post = models.OneToOneField(ReadingPost, on_delete=models.PROTECT, primary_key=True, related_name="+")
    evaluated_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"post {self.post_id} evaluated"


class AlarmKind(models.TextChoices):
    ALERT = "alert", "Alert limit"
    ACTION = "action", "Action limit"
    FEED_GAP = "feed_gap", "No data (feed gap)"


class Alarm(models.Model):
    """One excursion of one parameter (or one gap in an instrument's data) during a batch.

    An excursion opens one alarm, however many readings it spans; it escalates from alert to
    action when a value passes the action limit, and closes at the first value back within the
    alert limits (EU GMP Annex 15 §9 / Annex 11 §13: monitored parameters, excursions handled).
    Opening and closing times are data times (the readings' ts); `raised_at` is server time.
    """

    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="alarms")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="alarms")
    parameter = models.ForeignKey(InstrumentParameter, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+", help_text="None for a feed gap.")
    step = models.ForeignKey(StepExecution, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                             help_text="The step whose limits applied, when it was running.")
    kind = models.CharField(max_length=16, choices=AlarmKind.choices)
    critical = models.BooleanField(default=False, help_text="The master record marks the parameter critical.")
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    raised_at = models.DateTimeField(help_text="Server time when the system raised it.")
    worst_value = models.FloatField(null=True, blank=True)
    worst_at = models.DateTimeField(null=True, blank=True)
    limit_text = models.CharField(max_length=200)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledgement_comment = models.TextField(blank=True)
    signature = models.ForeignKey("qms.Signature", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    deviation_number = models.CharField(max_length=32, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [models.Index(fields=["batch", "opened_at"], name="alarm_batch_opened_idx")]
        constraints = [
            # One open excursion per parameter and instrument: evaluation can never open a second.
            models.UniqueConstraint(fields=["batch", "instrument", "parameter"], name="alarm_one_open_excursion",
                                    condition=models.Q(closed_at__isnull=True) & ~models.Q(kind="feed_gap")),
            models.UniqueConstraint(fields=["batch", "instrument"], name="alarm_one_open_feed_gap",
                                    condition=models.Q(closed_at__isnull=True, kind="feed_gap")),
        ]

    def __str__(self) -> str:
        # The facility's time with its zone, like every other time shown: the label is copied into
        # blockers, review flags, the audit trail and the PDF, where a bare UTC time read as local
        # (and could show another date).
        what = self.parameter.code if self.parameter is not None else "data"
        opened = timezone.localtime(self.opened_at)
        return f"{self.get_kind_display()} {what} on {self.batch.number} at {opened:%Y-%m-%d %H:%M} {opened.tzname()}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def limit_text_display(self) -> str:
        """The limits as people read them: the stored text keeps the UCUM code ('… [pH]', as the
        API gives it and the fingerprint holds it); screens and the printed record show '… pH'."""
        unit = self.parameter.unit if self.parameter is not None else ""
        if unit and self.limit_text.endswith(f" {unit}"):
            shown = unit_display(unit)
            return self.limit_text[: -len(unit) - 1] + (f" {shown}" if shown else "")
        return self.limit_text

    def covers(self, moment: datetime) -> bool:
        """Whether the alarm was open at `moment`."""
        return self.opened_at <= moment and (self.closed_at is None or moment < self.closed_at)

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    def signed_content(self) -> dict[str, Any]:
        """An acknowledgement covers what the alarm was when it was acknowledged (21 CFR 11.70).

        Worst value and closing time may still move while the alarm is open; an escalation
        changes `kind` and therefore needs a new acknowledgement.
        """
        return {"alarm": self.pk, "batch": self.batch.number, "instrument": self.instrument.name,
                "parameter": self.parameter.code if self.parameter is not None else None, "kind": self.kind,
                "opened_at": self.opened_at.isoformat(), "limit": self.limit_text,
                "deviation": self.deviation_number}
