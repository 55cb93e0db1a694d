"""Background work reaches a real Celery worker through real Redis, and survives a broker outage."""

import time
import uuid

import pytest
from django.db import transaction

from qms.audit import Event
from qms.models import AuditEvent, OutboxMessage
from qms.outbox import _dispatch_locked, enqueue, outbox_sweep
from tests.conftest import Worker

pytestmark = pytest.mark.worker


def _wait_for(predicate, seconds: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError("condition not met in time")


def _verified_events(request_id: str):  # type: ignore[no-untyped-def]
    return AuditEvent.objects.filter(event_type=Event.AUDIT_TRAIL_VERIFIED, data__request_id=request_id)


def test_task_round_trip_through_redis_and_a_real_worker(worker):
    from qms.tasks import heartbeat

    token = uuid.uuid4().hex

    result = heartbeat.delay(token)

    assert result.get(timeout=60) == token


def test_outbox_message_is_sent_after_commit_and_runs_once(worker):
    request_id = uuid.uuid4().hex
    with transaction.atomic():
        message = enqueue("qms.audit_trail_verify", request_id=request_id)

    _wait_for(lambda: _verified_events(request_id).exists())
    time.sleep(2)  # a duplicate delivery would show up here
    assert _verified_events(request_id).count() == 1
    assert OutboxMessage.objects.get(pk=message.pk).dispatched_at is not None


def test_rolled_back_transaction_sends_nothing(committed):
    request_id = uuid.uuid4().hex
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("qms.audit_trail_verify", request_id=request_id)
        raise RuntimeError("the business change failed")

    assert not OutboxMessage.objects.filter(kwargs__request_id=request_id).exists()


def test_work_enqueued_while_redis_is_down_runs_exactly_once_when_it_is_back(broker, committed, tmp_path, settings):
    settings.OUTBOX_SWEEP_AGE = __import__("datetime").timedelta(seconds=0)
    request_id = uuid.uuid4().hex
    broker.stop()
    try:
        with transaction.atomic():
            message = enqueue("qms.audit_trail_verify", request_id=request_id)
        message.refresh_from_db()
        assert message.dispatched_at is None, "nothing can be sent while the broker is down"
        assert message.attempts >= 1 and message.last_error
        assert outbox_sweep() == 0  # still down: still pending, nothing lost
    finally:
        broker.start()

    worker = Worker(broker.url, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        outbox_sweep()
        message.refresh_from_db()
        assert message.dispatched_at is not None, "this message, not only others left pending, was sent"
        _wait_for(lambda: _verified_events(request_id).exists())
        outbox_sweep()  # a second sweep must not send it again
        time.sleep(2)
        assert _verified_events(request_id).count() == 1
        message.refresh_from_db()
        assert message.dispatched_at is not None
        runs = _verified_events(request_id).count()
        print(f"outbox: enqueued 1 while Redis was down, pending until back, ran {runs}x")
    finally:
        worker.stop()


def test_a_sweep_while_redis_is_down_charges_an_attempt_only_to_the_message_it_tried(broker, committed):
    broker.stop()
    try:
        with transaction.atomic():
            messages = [enqueue("qms.audit_trail_verify", request_id=uuid.uuid4().hex) for _ in range(3)]
        mine = OutboxMessage.objects.filter(pk__in=[m.pk for m in messages])
        before = dict(mine.values_list("pk", "attempts"))  # each tried once at commit

        assert _dispatch_locked(mine) == 0

        after = dict(mine.values_list("pk", "attempts"))
        first, *rest = sorted(before)
        assert after[first] == before[first] + 1, "the message the sweep tried is charged"
        assert [after[pk] for pk in rest] == [before[pk] for pk in rest], "messages never tried are not"
        assert not mine.filter(dispatched_at__isnull=False).exists()
    finally:
        broker.start()
    assert _dispatch_locked(mine) == 3, "all three are still pending and go once Redis is back"


# --- relay-sent work: alarm evaluation after instrument posts -----------------------------------

def _post_ph(site, seq: int, value: float):  # type: ignore[no-untyped-def]
    import orjson
    from django.utils import timezone

    from ebr.services.readings import readings_ingest
    from tests.ebr.process_builders import reading

    body = orjson.dumps({"readings": [reading(seq, timezone.now() - __import__("datetime").timedelta(minutes=5),
                                              "ph", value)]})
    return readings_ingest(instrument=site.instrument, body=body)


def test_an_instrument_post_queues_alarm_evaluation_without_touching_the_broker(committed, monkeypatch):
    from tests.ebr.process_builders import plant

    site = plant()

    def broker_call(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the request must not publish relay-sent work itself")

    monkeypatch.setattr("qms.outbox._publish", broker_call)

    result = _post_ph(site, 1, 7.1)

    message = OutboxMessage.objects.get(task_name="ebr.alarms_evaluate", kwargs={"post_id": result.post_id})
    assert message.dispatched_at is None and message.attempts == 0


def test_the_relay_sends_alarm_evaluation_once_and_the_worker_raises_the_alarm(worker, relay):
    from ebr.models import Alarm, AlarmKind, ReadingPostEvaluation
    from tests.ebr.process_builders import plant

    site = plant()
    started = time.monotonic()
    result = _post_ph(site, 1, 6.4)  # below the pH action limit of the running step

    _wait_for(lambda: ReadingPostEvaluation.objects.filter(post_id=result.post_id).exists())
    latency = time.monotonic() - started
    time.sleep(1)  # a duplicate delivery would show up here

    message = OutboxMessage.objects.get(task_name="ebr.alarms_evaluate", kwargs={"post_id": result.post_id})
    assert message.dispatched_at is not None and message.attempts == 1
    assert ReadingPostEvaluation.objects.filter(post_id=result.post_id).count() == 1
    alarms = Alarm.objects.filter(batch=site.batch).exclude(kind=AlarmKind.FEED_GAP)
    assert [(alarm.kind, alarm.parameter.code) for alarm in alarms] == [("action", "ph")]
    print(f"relay: post committed → alarm evaluated in {latency:.2f} s, sent once, 1 alarm")
