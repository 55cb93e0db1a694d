"""Instrument ingest throughput: POST /api/v1/readings through gunicorn next to a raw COPY.

(a) the API: gunicorn with 2 workers (deploy/gunicorn.conf.py: gthread, 4 threads each), 4 client
    threads (one instrument token and one kept-open HTTP/1.1 connection each), 1,000 readings per
    request; each request is authenticated, rate-limited, decoded and checked, attributed to the
    batch under a shared lock, stored by a binary COPY, kept as its original compressed body
    (hash-chained at commit) and queued for alarm evaluation through the outbox, in one
    transaction, and answered with the open alarms; the outbox relay runs beside it and
    publishes that work to Redis (no worker: evaluating alarms is not part of ingest);
(b) a raw COPY of the same number of readings into the same table (same indexes, constraints
    and triggers), 4 kept-open connections, 1,000 rows per committed COPY, rows pre-rendered;
(c) a single COPY stream of the same rows in one transaction: the database's own ceiling.

Every variant is measured warm, as it runs all day: before the first round the server has
answered GETs and 4 posts per client (its processes have imported, prepared and cached what a post
needs; before 2026-11-29 only GETs, so the first round paid for that and read 36-43 % where later
rounds read about 50 %), and each COPY connection has copied once. The variants alternate in
rounds so that table growth, cache warm-up and the machine's own swings fall on all alike; the
ratio is that of the totals, and each round's ratio is printed beside it to show the spread.
Target: (a) at least 50 % of the better raw COPY. Beside the rates it prints the CPU time each
kind of process spent per 1,000 readings in (a) and (b) (web = gunicorn, database = PostgreSQL
backends, relay = outbox relay, client = this process, whose threads send), read from the
operating system, so that a change can be judged by where its cost lands and not only by a noisy
rate. Only this run's processes count: the gunicorn and relay this test started (with their
children) and the children of the postmaster serving the test database, except backends of other
databases (a shared cluster serves other people's tests meanwhile). The database column is empty
when PostgreSQL runs on another machine.
BENCH_INGEST_REQUESTS sets the requests per client thread and round (default 20: 4 x 20 x 1,000
= 80,000 readings per round and variant), BENCH_INGEST_ROUNDS the rounds (default 4).
"""

from __future__ import annotations

import http.client
import io
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import orjson
import psutil
import pytest
from django.db import connection, connections
from django.utils import timezone

from ebr.models import InstrumentParameter, Reading, ReadingPost
from ebr.services.instruments import instrument_register
from tests.ebr.process_builders import SEED, LiveServer, plant, stamp, unique

THREADS = 4
PER_REQUEST = 1000
REQUESTS = int(os.environ.get("BENCH_INGEST_REQUESTS", "20"))
ROUNDS = int(os.environ.get("BENCH_INGEST_ROUNDS", "4"))
WARM_UP = 4  # posts per client before the measurement
PARAMETERS = (("ph", "[pH]", 7.2), ("do", "%", 45.0), ("temp", "Cel", 37.0), ("co2", "%", 5.0),
              ("agitation", "/min", 14.0))


@dataclass
class Variant:
    label: str
    seconds: list[float] = field(default_factory=list)
    readings: int = 0
    cpu: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.readings / sum(self.seconds)


@dataclass(frozen=True)
class Measured:
    """The processes whose CPU time counts: this run's own, never another test's on the machine."""

    web: int  # the gunicorn master this test started; its workers are its children
    relay: int
    postmaster: int | None  # None: PostgreSQL is not on this machine

    @classmethod
    def of(cls, web: int, relay: int) -> Measured:
        postmaster = None
        if (connection.settings_dict["HOST"] or "localhost") in {"localhost", "127.0.0.1", "::1"}:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend = cursor.fetchone()[0]
            try:
                process = psutil.Process(backend)
                postmaster = process.ppid() if process.name() == "postgres" else None
            except psutil.Error:
                pass
        return cls(web=web, relay=relay, postmaster=postmaster)

    def processes(self) -> list[tuple[str, psutil.Process]]:
        found: list[tuple[str, psutil.Process]] = [("client", psutil.Process())]
        for kind, root in (("web", self.web), ("relay", self.relay), ("database", self.postmaster)):
            if root is None:
                continue
            try:
                parent = psutil.Process(root)
                found += [(kind, process) for process in [parent, *parent.children(recursive=True)]]
            except psutil.Error:
                continue
        if self.postmaster is not None:
            elsewhere = self._other_databases_backends()
            found = [(kind, process) for kind, process in found if process.pid not in elsewhere]
        return found

    @staticmethod
    def _other_databases_backends() -> set[int]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname <> current_database()")
            return {row[0] for row in cursor.fetchall()}


def _cpu_by_kind(measured: Measured) -> Counter[tuple[str, int]]:
    """CPU seconds so far of the processes that serve ingest, by (kind, pid)."""
    seconds: Counter[tuple[str, int]] = Counter()
    for kind, process in measured.processes():
        try:
            times = process.cpu_times()  # a fresh Process: process_iter() keeps stale CPU times of busy ones
        except psutil.Error:
            continue
        seconds[(kind, process.pid)] += times.user + times.system
    return seconds


def _cpu_spent(measured: Measured, before: Counter[tuple[str, int]]) -> Counter[str]:
    """CPU seconds by kind since `before` (processes that started meanwhile count from zero)."""
    spent: Counter[str] = Counter()
    for (kind, pid), seconds in _cpu_by_kind(measured).items():
        spent[kind] += max(seconds - before.get((kind, pid), 0.0), 0.0)
    return spent


def _readings(first_seq: int, count: int, start, step: timedelta) -> list[tuple[int, str, str, float, str]]:  # type: ignore[no-untyped-def]
    rows = []
    for i in range(count):
        code, unit, base = PARAMETERS[i % len(PARAMETERS)]
        rows.append((first_seq + i, stamp(start + step * (i // len(PARAMETERS))), code, base + (i % 97) / 1000, unit))
    return rows


def _bodies(start, step: timedelta, seq_base: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    bodies = []
    for n in range(REQUESTS):
        rows = _readings(seq_base + n * PER_REQUEST, PER_REQUEST, start + step * (n * PER_REQUEST // 5), step)
        bodies.append(orjson.dumps({"readings": [{"seq": seq, "ts": ts, "parameter": code, "value": value,
                                                  "unit": unit} for seq, ts, code, value, unit in rows]}))
    return bodies


def _warm_up(url: str, tokens: list[str], batch: str) -> None:
    """First requests import and cache what every later one uses: not part of the measurement."""
    host = urlsplit(url)
    for token in tokens * 3:
        connection_ = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
        connection_.request("GET", f"/api/v1/batches/{batch}/readings?limit=1",
                            headers={"Authorization": f"Bearer {token}"})
        assert connection_.getresponse().status == 200
        connection_.close()


def _post_all(url: str, tokens: list[str], bodies: list[list[bytes]], measured: Measured,
              cpu: Counter[str]) -> float:
    host = urlsplit(url)
    failures: list[str] = []
    barrier = threading.Barrier(THREADS + 1)

    def client(token: str, mine: list[bytes]) -> None:
        # One HTTP/1.1 connection per client, kept open as an instrument posting every few seconds keeps
        # it (and as each raw COPY connection stays open); opened again when the server has closed it.
        connection_ = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
        barrier.wait()
        for body in mine:
            try:
                connection_.request("POST", "/api/v1/readings", body=body, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                response = connection_.getresponse()
            except (http.client.RemoteDisconnected, ConnectionError):
                connection_.close()
                connection_.request("POST", "/api/v1/readings", body=body, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                response = connection_.getresponse()
            answer = response.read()
            if response.status != 201:
                failures.append(f"{response.status} {answer[:300]!r}")
        connection_.close()

    threads = [threading.Thread(target=client, args=(token, mine)) for token, mine in zip(tokens, bodies, strict=True)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began, before = time.perf_counter(), _cpu_by_kind(measured)
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    cpu.update(_cpu_spent(measured, before))
    assert not failures, failures[:3]
    return elapsed


def _copy_lines(ids: dict[str, int], instrument: int, batch: int, post: int, seq_base: int, start,  # type: ignore[no-untyped-def]
                step: timedelta) -> list[str]:
    chunks = []
    for n in range(REQUESTS * THREADS):
        buffer = io.StringIO()
        for seq, ts, code, value, unit in _readings(seq_base + n * PER_REQUEST, PER_REQUEST,
                                                    start + step * (n * PER_REQUEST // 5), step):
            buffer.write(f"{instrument}\t{batch}\t{ids[code]}\t{post}\t{seq}\t{ts}\t{value}\t{unit}\n")
        chunks.append(buffer.getvalue())
    return chunks


COPY_SQL = "COPY ebr_reading (instrument_id, batch_id, parameter_id, post_id, seq, ts, value, unit) FROM STDIN"


def _copy_chunk(raw, chunk: str) -> None:  # type: ignore[no-untyped-def]
    with raw.transaction(), raw.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
        copy.write(chunk)


def _copy_parallel(raws: list, chunks: list[str], measured: Measured, cpu: Counter[str]) -> float:  # type: ignore[type-arg]
    """The chunks over the (already open, warmed) connections, one thread each."""
    started, finished = threading.Barrier(THREADS + 1), threading.Barrier(THREADS + 1)

    def copier(raw, mine: list[str]) -> None:  # type: ignore[no-untyped-def]
        started.wait()
        for chunk in mine:
            _copy_chunk(raw, chunk)
        finished.wait()

    threads = [threading.Thread(target=copier, args=(raws[i], chunks[i::THREADS])) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    started.wait()
    began, before = time.perf_counter(), _cpu_by_kind(measured)
    finished.wait()
    elapsed = time.perf_counter() - began
    cpu.update(_cpu_spent(measured, before))
    for thread in threads:
        thread.join()
    return elapsed


def _raw_connection():  # type: ignore[no-untyped-def]
    import psycopg

    db = connections["default"].settings_dict
    return psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                           password=db["PASSWORD"] or None, dbname=db["NAME"], autocommit=True)


def _copy_single(raw, chunks: list[str]) -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    with raw.transaction(), raw.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
        for chunk in chunks:
            copy.write(chunk)
    return time.perf_counter() - began


@pytest.mark.django_db
def test_readings_table_has_its_indexes() -> None:
    """Precondition (and what makes pytest-django create the test database for this module)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'ebr_reading'")
        assert cursor.fetchone()[0] == 4  # primary key, (instrument, seq), BRIN ts, (batch, parameter, ts)


def test_ingest_throughput_through_the_api_against_raw_copy(committed, broker, relay, tmp_path) -> None:  # type: ignore[no-untyped-def]
    site = plant()
    tokens = [site.token] + [instrument_register(actor=SEED, name=unique("bench"), equipment=site.equipment).token
                             for _ in range(THREADS - 1)]
    copier = instrument_register(actor=SEED, name=unique("copy"), equipment=site.equipment).instrument
    post = ReadingPost.objects.create(instrument=copier, received_at=timezone.now(), body_sha256="0" * 64,
                                      body=b"", body_bytes=0, readings=0, accepted=0, duplicates=0)
    ids = dict(InstrumentParameter.objects.values_list("code", "pk"))
    step = timedelta(seconds=2)
    start = timezone.now() - timedelta(days=1)
    server = LiveServer(tmp_path / "gunicorn.log", broker_url=broker.url, gunicorn_workers=2,
                        extra_env={"INSTRUMENT_RATE_LIMIT": "1000000/min"}).wait_ready()
    api, parallel, single = Variant("API, gunicorn 2 workers, 4 clients"), Variant("raw COPY, 4 connections"), \
        Variant("raw COPY, 1 stream")
    measured = Measured.of(web=server.process.pid, relay=relay.process.pid)
    raws = [_raw_connection() for _ in range(THREADS + 1)]  # the parallel copiers' and the single stream's
    try:
        # Every variant is measured warm: the server's processes and their database connections have
        # imported, prepared and cached what a post needs, the COPY connections have copied once.
        _warm_up(server.url, tokens, site.batch.number)
        _post_all(server.url, tokens, [_bodies(start, step, 5 * 10**8 + n * 10**7)[:WARM_UP] for n in range(THREADS)],
                  measured, Counter())
        for n, raw in enumerate(raws):
            _copy_chunk(raw, _copy_lines(ids, copier.pk, site.batch.pk, post.pk, 9 * 10**9 + n * 10**7, start, step)[0])
        for round_ in range(ROUNDS):
            seq_base = round_ * REQUESTS * PER_REQUEST
            bodies = [_bodies(start, step, seq_base) for _ in tokens]
            api.seconds.append(_post_all(server.url, tokens, bodies, measured, api.cpu))
            api.readings += THREADS * REQUESTS * PER_REQUEST
            base = 10**9 * (round_ + 1)
            parallel.seconds.append(_copy_parallel(raws[:THREADS], _copy_lines(ids, copier.pk, site.batch.pk, post.pk,
                                                                               base, start, step),
                                                   measured, parallel.cpu))
            parallel.readings += THREADS * REQUESTS * PER_REQUEST
            single.seconds.append(_copy_single(raws[THREADS], _copy_lines(ids, copier.pk, site.batch.pk, post.pk,
                                                                          base + 10**8, start, step)))
            single.readings += THREADS * REQUESTS * PER_REQUEST
    finally:
        server.stop()
        for raw in raws:
            raw.close()

    best_copy = max(parallel.rate, single.rate)
    ratio = api.rate / best_copy
    print(f"\n\nInstrument ingest, {ROUNDS} rounds of {THREADS} x {REQUESTS} x {PER_REQUEST:,} readings per variant")
    for variant in (api, parallel, single):
        print(f"  {variant.label:<40}{variant.rate:>12,.0f} readings/s   ({variant.readings:,} in "
              f"{sum(variant.seconds):.2f} s)")
    print(f"  API / best raw COPY: {ratio:.0%} (target >= 50%)")
    rounds = [THREADS * REQUESTS * PER_REQUEST / seconds for seconds in api.seconds]
    best = [THREADS * REQUESTS * PER_REQUEST / min(a, b) for a, b in zip(parallel.seconds, single.seconds, strict=True)]
    print("  per round: " + ", ".join(f"{a / b:.0%}" for a, b in zip(rounds, best, strict=True)))
    print("  CPU per 1,000 readings:")
    for variant in (api, parallel):
        spent = ", ".join(f"{kind} {variant.cpu[kind] / variant.readings * 1e6:.1f} ms"
                          for kind in ("web", "database", "relay", "client") if variant.cpu[kind])
        print(f"    {variant.label:<38}{spent or 'not visible from here'}")
    print()

    assert Reading.objects.filter(instrument__in=[site.instrument.pk]).count() == \
        (ROUNDS * REQUESTS + WARM_UP) * PER_REQUEST
    assert ReadingPost.objects.filter(instrument__equipment=site.equipment).exclude(pk=post.pk).count() == \
        THREADS * (ROUNDS * REQUESTS + WARM_UP)
