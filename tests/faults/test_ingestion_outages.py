"""Instrument ingestion while Redis is down and while PostgreSQL restarts (issue #9, faults 3).

Redis: readings keep being accepted and stored while the broker is down (the alarm evaluation
each post needs is an outbox row in the post's own transaction); once Redis is back, the outbox
relay sends what waited and the worker evaluates it: an excursion posted during the outage ends
as exactly one alarm. A small post is evaluated before the answer as well, which needs no broker:
its alarm is raised at once, and the work delivered later finds it done. This is the instrument
case of tests/qms/test_background_work.py (which proves the same for a plain outbox message, with
the same `broker` fixture).

PostgreSQL: the simulator (`manage.py simulate_bioreactor`) posts through gunicorn to a
throwaway PostgreSQL cluster, which is stopped in the middle of the run until the simulator has
had to retry, then started again: every (instrument, seq) it sent is stored exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from ebr.models import Alarm, AlarmKind, Reading, ReadingPost, ReadingPostEvaluation
from qms.models import Deviation, OutboxMessage
from tests.conftest import ROOT
from tests.ebr.process_builders import plant, reading
from tests.faults.conftest import CeleryWorker, WebServer, base_env, figures, in_broker, received, wait_for

pytestmark = pytest.mark.faults

PER_POST = 20


def post_readings(url: str, token: str, readings: list[dict[str, Any]], batch: str | None = None
                  ) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"readings": readings, **({"batch": batch} if batch else {})}
    request = urllib.request.Request(f"{url}/api/v1/readings", data=json.dumps(body).encode(),  # noqa: S310
                                     method="POST", headers={"Authorization": f"Bearer {token}",
                                                             "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (loopback)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, {"body": text[:500].decode(errors="replace")}


@pytest.mark.worker
def test_readings_posted_while_redis_is_down_are_stored_and_their_alarm_raised_once_it_is_back(
        committed, broker, relay, processes, tmp_path):
    """The worker's path: evaluation before the answer is off here (INSTRUMENT_EVALUATE_INLINE_MAX
    0), as for posts too large for it; the next test covers a small post during the outage."""
    site = plant()
    server = processes.add(WebServer(tmp_path / "web.log", redis=broker.url,
                                     INSTRUMENT_EVALUATE_INLINE_MAX="0")).wait_ready()
    worker = processes.add(CeleryWorker(tmp_path / "worker.log", broker.url)).wait_ready()
    posts = ReadingPost.objects.filter(instrument=site.instrument, accepted__gt=0)  # duplicates only: no work
    start = timezone.now() - timedelta(hours=2)
    seq = iter(range(1, 10_000))

    def readings(values: list[float]) -> list[dict[str, Any]]:
        return [reading(number := next(seq), start + timedelta(minutes=number), "ph", value) for value in values]

    def evaluation_work() -> list[OutboxMessage]:
        return list(OutboxMessage.objects.filter(task_name="ebr.alarms_evaluate",
                                                 kwargs__post_id__in=list(posts.values_list("pk", flat=True)))
                    .order_by("id"))

    def evaluated() -> bool:
        return ReadingPostEvaluation.objects.filter(post__in=posts).count() == posts.count()

    def excursions() -> list[tuple[str, str]]:
        alarms = Alarm.objects.filter(batch=site.batch).exclude(kind=AlarmKind.FEED_GAP).order_by("id")
        return [(alarm.kind, alarm.parameter.code) for alarm in alarms]

    sent, answers = [], []
    for _ in range(3):  # Redis up: the usual path
        sent += (chunk := readings([7.1] * PER_POST))
        answers.append(post_readings(server.url, site.token, chunk))
    wait_for(evaluated, what="the posts before the outage evaluated", log=worker.log)

    broker.stop()
    try:
        # During the outage: a pH excursion below the action limit (6.80) and back, over three posts.
        for values in ([7.1] * 10 + [6.5] * 10, [6.4] * 5 + [7.1] * 15, [7.1] * PER_POST):
            sent += (chunk := readings(values))
            answers.append(post_readings(server.url, site.token, chunk))
        resent = post_readings(server.url, site.token, chunk)  # an instrument's retry: duplicates only
        stored_while_down = Reading.objects.filter(instrument=site.instrument).count()
        pending_while_down = [message.pk for message in evaluation_work() if message.dispatched_at is None]
        alarms_while_down = excursions()
    finally:
        broker.start()

    wait_for(evaluated, what="the posts of the outage evaluated once Redis is back", log=worker.log)
    carried_by = {message.pk: message.celery_task_id for message in evaluation_work()}
    work = set(carried_by.values())
    wait_for(lambda: not in_broker(broker.url, work), what="every evaluation acknowledged", log=worker.log)

    stored = list(Reading.objects.filter(instrument=site.instrument).values_list("seq", flat=True))
    sent_seqs = {item["seq"] for item in sent}
    deliveries = sum(received(worker.log, task_id) for task_id in work)
    evaluations = ReadingPostEvaluation.objects.filter(post__in=posts).count()
    alarms = Alarm.objects.filter(batch=site.batch).exclude(kind=AlarmKind.FEED_GAP)
    deviations = Deviation.objects.filter(subjects__subject_type="ebr.batch",
                                          subjects__subject_id=str(site.batch.pk)).count()
    figures(f"Redis outage: readings sent {len(sent)} ({3 * PER_POST} while Redis was down, answers "
            f"{[status for status, _ in answers]}), stored {len(stored)} ({stored_while_down} while down), "
            f"duplicated {len(stored) - len(set(stored))}, lost {len(sent_seqs - set(stored))}; re-sent "
            f"{PER_POST}: duplicates {resent[1].get('duplicates')}; evaluations waiting while down "
            f"{len(pending_while_down)}, posts {posts.count()}, evaluated {evaluations}, Celery messages "
            f"{len(work)}, deliveries {deliveries}; "
            f"alarms while down {len(alarms_while_down)}, after {excursions()}, deviations {deviations}")

    assert [status for status, _ in answers] == [201] * 6, answers
    assert resent[0] == 201 and resent[1]["accepted"] == 0 and resent[1]["duplicates"] == PER_POST
    assert stored_while_down == len(sent) and len(pending_while_down) == 3
    assert sorted(stored) == sorted(sent_seqs)
    assert alarms_while_down == []
    assert excursions() == [("action", "ph")]
    assert alarms.get().closed_at is not None and deviations == 1
    assert posts.count() == evaluations == len(carried_by) == 6
    assert "" not in work, "every row records the Celery message it went in"
    # What waited for Redis went as one message once it was back (the relay's group of a sweep).
    outage = f"outbox-{pending_while_down[0]}-{pending_while_down[-1]}"
    assert [carried_by[pk] for pk in pending_while_down] == [outage] * 3
    assert received(worker.log, outage) == 1


@pytest.mark.worker
def test_a_small_post_during_a_redis_outage_is_alarmed_at_once_and_once(committed, broker, relay, processes,
                                                                         tmp_path):
    """A small post is evaluated before the answer, which needs no broker: the excursion posted
    while Redis is down is in the answer, with its deviation. Once Redis is back the queued work
    is delivered, finds the post evaluated, and raises nothing more."""
    site = plant()
    server = processes.add(WebServer(tmp_path / "web.log", redis=broker.url)).wait_ready()
    worker = processes.add(CeleryWorker(tmp_path / "worker.log", broker.url)).wait_ready()
    start = timezone.now() - timedelta(hours=2)
    values = [7.1] * 5 + [6.5] * 5 + [7.1] * 5
    chunk = [reading(n, start + timedelta(minutes=n), "ph", value) for n, value in enumerate(values, start=1)]

    broker.stop()
    try:
        status, answer = post_readings(server.url, site.token, chunk)
    finally:
        broker.start()

    assert status == 201
    (alarm,) = answer["alarms"]
    assert (alarm["parameter"], alarm["kind"], alarm["closed_at"] is not None) == ("ph", "action", True)
    assert alarm["deviation"]
    post = ReadingPost.objects.get(instrument=site.instrument)
    (message,) = OutboxMessage.objects.filter(task_name="ebr.alarms_evaluate", kwargs__post_id=post.pk)
    wait_for(lambda: OutboxMessage.objects.get(pk=message.pk).dispatched_at is not None,
             what="the queued evaluation sent once Redis is back", log=worker.log)
    task_id = OutboxMessage.objects.get(pk=message.pk).celery_task_id
    wait_for(lambda: not in_broker(broker.url, {task_id}), what="the evaluation acknowledged", log=worker.log)
    assert Alarm.objects.filter(batch=site.batch).exclude(kind=AlarmKind.FEED_GAP).count() == 1
    assert Deviation.objects.filter(subjects__subject_type="ebr.batch", subjects__subject_id=str(site.batch.pk)
                                    ).count() == 1


# --- PostgreSQL restarting under the simulator -----------------------------------------------------------

PREPARE = """
import json
import django
django.setup()
from django.core.management import call_command
from django.test.utils import override_settings
from tests.ebr.process_builders import plant
call_command("migrate", interactive=False, verbosity=0)
with override_settings(PASSWORD_HASHERS=["tests.hashers.CheapArgon2PasswordHasher"]):
    site = plant()
print(json.dumps({"batch": site.batch.number, "token": site.token, "instrument": site.instrument.pk}))
"""


def _django(arguments: list[str], env: dict[str, str], what: str) -> str:
    result = subprocess.run([sys.executable, *arguments], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{what}: {result.stdout[-2000:]} {result.stderr[-3000:]}"
    return result.stdout


def test_postgres_restart_under_the_simulator_stores_every_seq_exactly_once(
        throwaway_postgres, private_redis, processes, tmp_path):
    env = base_env(database=throwaway_postgres.url, redis=private_redis.url)
    prepared = _django(["-c", PREPARE], env, "migrate the throwaway database, build a batch with a bioreactor")
    site = json.loads(prepared.strip().splitlines()[-1])
    server = processes.add(WebServer(tmp_path / "web.log", workers=2, database=throwaway_postgres.url,
                                     redis=private_redis.url)).wait_ready()
    simulator_log = tmp_path / "simulator.log"
    simulator = processes.add(_simulator(site, server.url, tmp_path, env, simulator_log))

    def stored(cursor_sql: str = "SELECT count(*), count(DISTINCT seq) FROM ebr_reading WHERE instrument_id = %s"
               ) -> tuple[int, int]:
        with throwaway_postgres.connect() as connection:
            return connection.execute(cursor_sql, [site["instrument"]]).fetchone()

    wait_for(lambda: stored()[0] > 0, what="the simulator's first readings stored", log=simulator_log)
    before_stop = stored()[0]
    throwaway_postgres.stop()
    try:  # down until the simulator has had to retry: a post failed, and is sent again
        wait_for(lambda: "retry in" in simulator_log.read_text(), seconds=60, what="a retry by the simulator",
                 log=simulator_log)
    finally:
        throwaway_postgres.start_again()
    assert simulator.process.wait(300) == 0, simulator_log.read_text()[-3000:]

    output = simulator_log.read_text()
    summary = next(line for line in output.splitlines() if line.startswith("posted "))
    sent, accepted, duplicates = (int(word.strip(",;")) for word in
                                  (summary.split()[1], summary.split()[7], summary.split()[9]))
    rows, distinct = stored()
    first, last = stored("SELECT min(seq), max(seq) FROM ebr_reading WHERE instrument_id = %s")
    retries = output.count("retry in")
    figures(f"PostgreSQL restart: readings sent {sent}, stored {rows} ({before_stop} before the stop), "
            f"duplicated {rows - distinct} (re-sent and counted as duplicates {duplicates}), "
            f"lost {sent - distinct}; simulator retries {retries}")

    assert retries >= 1
    assert rows == distinct == sent
    # A post stored just before PostgreSQL stopped can lose its answer (or the alarms read after
    # it): the simulator sends it again, and the spec counts those readings as duplicates.
    assert accepted + duplicates == sent
    assert last - first + 1 == sent  # the simulator's seqs are consecutive: no gap, nothing lost


def _simulator(site: dict[str, Any], url: str, tmp_path, env: dict[str, str], log) -> Any:  # type: ignore[no-untyped-def]
    from tests.faults.conftest import Process

    # 4 simulated hours, one online reading a minute (5 parameters) and the hourly at-line ones,
    # at 2,400x: about 6 s of real time, a post a second.
    return Process([sys.executable, "manage.py", "simulate_bioreactor", "--batch", site["batch"], "--hours", "4",
                    "--speed", "2400", "--url", url, "--token", site["token"], "--state", str(tmp_path / "sim.json"),
                    "--seed", "3", "--max-retries", "10"], log, env)


def test_a_post_on_a_connection_the_database_dropped_is_stored_at_the_first_attempt(committed, tmp_path):
    """The web process keeps its database connection between requests. When PostgreSQL drops it (a
    restart, a failover, a proxy's idle timeout), the next post is read again on a new connection
    and stored: the instrument sees a 201, not a 5xx it must retry (its token read stands in for
    Django's per-request health check, see ebr/services/instruments.py)."""
    from django.db import connection

    from tests.ebr.process_builders import LiveServer

    site = plant()
    # One worker with one thread: the second post is served on the connection the first one left.
    server = LiveServer(tmp_path / "web.log", gunicorn_workers=1, extra_env={"GUNICORN_THREADS": "1"}).wait_ready()
    try:
        now = timezone.now()
        assert post_readings(server.url, site.token, [reading(1, now - timedelta(minutes=2))])[0] == 201
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            assert cursor.fetchone()[0] >= 1  # the web process's kept connection
        status, answer = post_readings(server.url, site.token, [reading(2, now - timedelta(minutes=1))])
    finally:
        server.stop()

    assert status == 201, answer
    assert sorted(Reading.objects.filter(instrument=site.instrument).values_list("seq", flat=True)) == [1, 2]


def test_an_instrument_post_skips_the_connection_health_check_its_token_read_makes(committed, monkeypatch):
    """Django checks a kept connection with a SELECT 1 before each request's first query: a round
    trip on every post, which the token read makes unnecessary (the test above drops the
    connection)."""
    from django.db import connection
    from django.test import Client

    site, client = plant(), Client()
    connection.ensure_connection()
    checks = []
    usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or usable())
    monkeypatch.setattr(connection, "health_check_enabled", True)
    monkeypatch.setattr(connection, "health_check_done", False)  # as when a request starts on a kept connection

    body = {"readings": [reading(1, timezone.now() - timedelta(minutes=1))]}
    response = client.post("/api/v1/readings", data=json.dumps(body), content_type="application/json", **site.auth)
    assert response.status_code == 201, response.content
    assert checks == []


def test_a_token_read_that_fails_on_a_working_connection_is_not_read_again(committed):
    """Only a dropped connection is worth a second read: a lock timeout (here, a migration holding
    the instrument table) must not be tried again on a new connection without that timeout,
    where the request would wait on the lock indefinitely, nor cost a reconnect."""
    import threading

    import psycopg
    from django.db import OperationalError, connection

    from ebr.services.instruments import instrument_for_token
    from tests.conftest import database_url

    site = plant()
    connection.ensure_connection()
    kept = connection.connection
    with psycopg.connect(database_url()) as migration:
        migration.execute("LOCK TABLE ebr_instrument IN ACCESS EXCLUSIVE MODE")
        release = threading.Timer(3.0, migration.rollback)  # so that a second read on a new connection ends
        release.start()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '200ms'")
            with pytest.raises(OperationalError, match="lock timeout"):
                instrument_for_token(site.token)
        finally:
            release.cancel()
            migration.rollback()
    assert connection.connection is kept, "the working connection was closed and opened again"
    assert instrument_for_token(site.token) == site.instrument
