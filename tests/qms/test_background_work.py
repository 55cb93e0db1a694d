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
    sent = OutboxMessage.objects.get(pk=message.pk)
    assert sent.dispatched_at is not None and sent.celery_task_id == f"outbox-{message.pk}"


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


def _relay_drained() -> None:
    """Wait until the relay has sent what earlier tests left pending, so that the posts a test makes
    next go in Celery messages of their own."""
    from django.conf import settings

    relay_sent = OutboxMessage.objects.filter(task_name__in=list(settings.OUTBOX_RELAY_TASKS))
    _wait_for(lambda: not relay_sent.filter(dispatched_at__isnull=True).exists())


def _deliveries(worker: Worker, task_id: str) -> int:
    """How often the worker's log says it received the Celery message with this id."""
    return worker.log.read_text().count(f"[{task_id}] received")


def test_the_relay_sends_alarm_evaluation_once_and_the_worker_raises_the_alarm(worker, relay):
    from ebr.models import Alarm, AlarmKind, ReadingPostEvaluation
    from tests.ebr.process_builders import plant

    site = plant()
    _relay_drained()
    started = time.monotonic()
    result = _post_ph(site, 1, 6.4)  # below the pH action limit of the running step

    _wait_for(lambda: ReadingPostEvaluation.objects.filter(post_id=result.post_id).exists())
    latency = time.monotonic() - started
    time.sleep(1)  # a duplicate delivery would show up here

    message = OutboxMessage.objects.get(task_name="ebr.alarms_evaluate", kwargs={"post_id": result.post_id})
    assert message.dispatched_at is not None and message.attempts == 1
    assert message.celery_task_id == f"outbox-{message.pk}", "a post alone in its sweep is sent as itself"
    assert ReadingPostEvaluation.objects.filter(post_id=result.post_id).count() == 1
    alarms = Alarm.objects.filter(batch=site.batch).exclude(kind=AlarmKind.FEED_GAP)
    assert [(alarm.kind, alarm.parameter.code) for alarm in alarms] == [("action", "ph")]
    print(f"relay: post committed → alarm evaluated in {latency:.2f} s, sent once, 1 alarm")


def _alarm_work(post_ids: list[int]):  # type: ignore[no-untyped-def]
    return OutboxMessage.objects.filter(task_name="ebr.alarms_evaluate", kwargs__post_id__in=post_ids).order_by("id")


def test_posts_committed_together_go_to_the_worker_as_one_celery_message_and_each_is_evaluated_once(
        worker, relay):
    from ebr.models import Alarm, AlarmKind, ReadingPostEvaluation
    from tests.ebr.process_builders import plant

    site = plant()
    _relay_drained()
    with transaction.atomic():  # one commit, so the relay finds all five in one sweep
        posts = [_post_ph(site, seq, value).post_id for seq, value in enumerate([7.1, 7.1, 6.4, 7.1, 7.1], 1)]

    _wait_for(lambda: ReadingPostEvaluation.objects.filter(post_id__in=posts).count() == len(posts))
    time.sleep(1)  # a duplicate delivery would show up here

    work = list(_alarm_work(posts))
    task_id = f"outbox-{work[0].pk}-{work[-1].pk}"
    assert [message.celery_task_id for message in work] == [task_id] * 5, "each row names the message it went in"
    assert all(message.dispatched_at is not None and message.attempts == 1 for message in work)
    assert _deliveries(worker, task_id) == 1
    assert f"ebr.alarms_evaluate_posts[{task_id}] received" in worker.log.read_text()
    assert ReadingPostEvaluation.objects.filter(post_id__in=posts).count() == len(posts)
    alarms = Alarm.objects.filter(batch=site.batch).exclude(kind=AlarmKind.FEED_GAP)
    assert [(alarm.kind, alarm.parameter.code) for alarm in alarms] == [("action", "ph")]


def test_a_group_that_cannot_be_published_is_charged_as_a_whole_and_nothing_after_it(broker, committed):
    from tests.ebr.process_builders import plant

    site = plant()
    broker.stop()
    try:
        with transaction.atomic():
            posts = [_post_ph(site, seq, 7.1).post_id for seq in (1, 2, 3)]
        with transaction.atomic():  # sent by its own request at commit: tried once, and failed
            later = enqueue("qms.audit_trail_verify", request_id=uuid.uuid4().hex)
        group = [message.pk for message in _alarm_work(posts)]
        mine = OutboxMessage.objects.filter(pk__in=[*group, later.pk])
        before = dict(mine.values_list("pk", "attempts"))
        assert [before[pk] for pk in group] == [0, 0, 0] and before[later.pk] == 1

        assert _dispatch_locked(mine) == 0

        after = {message.pk: message for message in mine}
        assert [after[pk].attempts for pk in group] == [1, 1, 1], "every row of the group tried is charged"
        assert all(after[pk].last_error for pk in group)
        assert after[later.pk].attempts == 1, "the message after the failed group was not tried"
        assert not mine.filter(dispatched_at__isnull=False).exists()
        assert set(mine.values_list("celery_task_id", flat=True)) == {""}, "no row claims a message not sent"
    finally:
        broker.start()

    assert _dispatch_locked(mine) == 4, "all four are still pending and go once Redis is back"
    assert dict(mine.values_list("pk", "celery_task_id")) == {
        **{pk: f"outbox-{group[0]}-{group[-1]}" for pk in group}, later.pk: f"outbox-{later.pk}"}
    assert dict(mine.values_list("pk", "attempts")) == {**{pk: 2 for pk in group}, later.pk: 2}


def test_a_backlog_larger_than_the_group_limit_goes_in_several_messages_each_post_evaluated_once(
        worker, monkeypatch):
    from ebr.models import ReadingPostEvaluation
    from tests.ebr.process_builders import plant

    monkeypatch.setattr("qms.outbox.GROUP_LIMIT", 3)
    site = plant()
    with transaction.atomic():  # seven posts waiting, as after a broker outage
        posts = [_post_ph(site, seq, 7.1).post_id for seq in range(1, 8)]
    ids = [message.pk for message in _alarm_work(posts)]

    assert _dispatch_locked(_alarm_work(posts)) == 7

    _wait_for(lambda: ReadingPostEvaluation.objects.filter(post_id__in=posts).count() == len(posts))
    time.sleep(1)  # a duplicate delivery would show up here
    groups = [f"outbox-{ids[0]}-{ids[2]}", f"outbox-{ids[3]}-{ids[5]}", f"outbox-{ids[6]}"]
    carried_by = [message.celery_task_id for message in _alarm_work(posts)]
    assert carried_by == [groups[0]] * 3 + [groups[1]] * 3 + [groups[2]]
    assert [_deliveries(worker, task_id) for task_id in groups] == [1, 1, 1]
    assert f"ebr.alarms_evaluate[{groups[2]}] received" in worker.log.read_text(), "the last one alone, as itself"
    assert ReadingPostEvaluation.objects.filter(post_id__in=posts).count() == len(posts)
