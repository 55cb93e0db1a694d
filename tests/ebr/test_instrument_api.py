"""The instrument API contract (specs/instrument-api.md): every rule, hostile input, concurrency."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import orjson
import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone

from ebr.models import Instrument, InstrumentParameter, Reading, ReadingPost, ReadingPostEvaluation
from ebr.services import batches as batch_services
from ebr.services.instruments import instrument_register, instrument_revoke, token_digest
from qms.audit import Event
from qms.models import AuditedTable, AuditEvent, OutboxMessage
from tests.conftest import login
from tests.ebr.process_builders import SEED, bioreactor, plant, reading, running_batch, stamp, unique

pytestmark = pytest.mark.django_db

URL = "/api/v1/readings"


@pytest.fixture
def site(db):  # type: ignore[no-untyped-def]
    return plant()


def post(client: Client, site, body, *, token: str | None = None, raw: bool = False):  # type: ignore[no-untyped-def]
    data = body if raw else orjson.dumps(body)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token or site.token}"}
    return client.post(URL, data=data, content_type="application/json", **headers)


def stored(site) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    return (Reading.objects.filter(instrument=site.instrument).count(),
            ReadingPost.objects.filter(instrument=site.instrument).count())


def now_minus(**delta: float):  # type: ignore[no-untyped-def]
    return timezone.now() - timedelta(**delta)


# --- storing ----------------------------------------------------------------------------------

def test_post_stores_readings_with_the_original_body(client, site):
    body = {"readings": [reading(1, now_minus(minutes=2)), reading(2, now_minus(minutes=2), "do", 41.5)]}
    raw = orjson.dumps(body)

    response = client.post(URL, data=raw, content_type="application/json", **site.auth)

    assert response.status_code == 201, response.content
    assert response.json() == {"accepted": 2, "duplicates": 0, "alarms": []}
    rows = list(Reading.objects.filter(instrument=site.instrument).order_by("seq"))
    assert [(r.seq, r.parameter.code, r.value, r.unit, r.batch_id) for r in rows] == [
        (1, "ph", 7.1, "[pH]", site.batch.pk), (2, "do", 41.5, "%", site.batch.pk)]
    post_row = ReadingPost.objects.get(instrument=site.instrument)
    assert post_row.original() == raw
    assert post_row.body_sha256 == hashlib.sha256(raw).hexdigest()
    assert (post_row.readings, post_row.accepted, post_row.duplicates) == (2, 2, 0)
    assert {r.post_id for r in rows} == {post_row.pk}


def test_the_answer_lists_the_alarm_an_excursion_in_the_request_raised(client, site):
    """specs/instrument-api.md: readings outside the limits raise alarms, one per excursion, and the
    201 answer lists them; an alarm on a critical parameter (pH here) opens a deviation. A small
    post is evaluated before the answer, so the instrument learns of the excursion at once, even
    one that began and ended within the request."""
    values = [7.1, 7.1, 6.6, 6.5, 6.6, 7.1, 7.1]
    response = post(client, site, {"readings": [reading(n, now_minus(minutes=30 - n), value=value)
                                                 for n, value in enumerate(values, start=1)]})

    assert response.status_code == 201
    (alarm,) = response.json()["alarms"]
    assert (alarm["parameter"], alarm["kind"], alarm["critical"], alarm["worst_value"]) == ("ph", "action", True, 6.5)
    assert alarm["closed_at"] is not None and alarm["deviation"]

    going_on = post(client, site, {"readings": [reading(10 + n, now_minus(minutes=20 - n), value=7.55)
                                                for n in range(3)]}).json()["alarms"]
    assert [(a["kind"], a["closed_at"]) for a in going_on] == [("alert", None)]  # one excursion, still open

    back = post(client, site, {"readings": [reading(20, now_minus(minutes=10), value=7.1)]}).json()["alarms"]
    # The excursion this request ended is listed, closed: the instrument learns that it is over.
    assert [(a["id"], a["kind"], a["closed_at"] is not None) for a in back] == [(going_on[0]["id"], "alert", True)]
    quiet = post(client, site, {"readings": [reading(21, now_minus(minutes=9), value=7.1)]}).json()["alarms"]
    assert quiet == []  # nothing open, nothing changed by this request


def test_the_answer_lists_an_alarm_the_request_escalated_and_closed_again(client, site):
    """An excursion open since an earlier post, worsened to the action limit and back within the
    limits in this one: the instrument learns of the action-limit excursion and its deviation."""
    alert = post(client, site, {"readings": [reading(1, now_minus(minutes=30), value=7.55)]}).json()["alarms"]
    assert [(a["kind"], a["closed_at"]) for a in alert] == [("alert", None)]

    values = [7.55, 7.7, 7.1]
    answer = post(client, site, {"readings": [reading(n, now_minus(minutes=30 - n), value=value)
                                              for n, value in enumerate(values, start=2)]}).json()["alarms"]

    (alarm,) = answer
    assert (alarm["id"], alarm["kind"], alarm["worst_value"]) == (alert[0]["id"], "action", 7.7)
    assert alarm["closed_at"] is not None and alarm["deviation"]


def test_a_large_post_is_evaluated_by_the_worker_and_its_alarm_shows_from_the_next_answer(client, site, settings):
    settings.INSTRUMENT_EVALUATE_INLINE_MAX = 2
    excursion = [reading(n, now_minus(minutes=30 - n), value=7.55) for n in range(1, 4)]

    assert post(client, site, {"readings": excursion}).json()["alarms"] == []
    assert not ReadingPostEvaluation.objects.filter(post__instrument=site.instrument).exists()

    from ebr.services.alarms import alarms_evaluate  # what the worker runs, queued on commit
    alarms_evaluate(post_id=ReadingPost.objects.get(instrument=site.instrument).pk)
    later = post(client, site, {"readings": [reading(4, now_minus(minutes=20), value=7.56)]}).json()["alarms"]
    assert [(a["kind"], a["closed_at"]) for a in later] == [("alert", None)]


def test_a_small_post_after_a_waiting_large_one_is_left_to_the_worker_in_time_order(client, site, settings):
    """The request does not evaluate a large earlier post (it may hold thousands of readings), nor
    the small one before it: the worker evaluates both, in time order."""
    settings.INSTRUMENT_EVALUATE_INLINE_MAX = 2
    excursion = [reading(n, now_minus(minutes=30 - n), value=7.55) for n in range(1, 4)]
    assert post(client, site, {"readings": excursion}).json()["alarms"] == []

    small = post(client, site, {"readings": [reading(4, now_minus(minutes=20), value=7.2)]})

    assert small.status_code == 201 and small.json()["alarms"] == []
    assert not ReadingPostEvaluation.objects.filter(post__instrument=site.instrument).exists()
    from ebr.models import Alarm
    from ebr.services.alarms import alarms_evaluate  # what the worker runs, queued on commit
    alarms_evaluate(post_id=ReadingPost.objects.filter(instrument=site.instrument).latest("pk").pk)
    (alarm,) = Alarm.objects.filter(batch=site.batch)
    assert alarm.kind == "alert" and alarm.closed_at is not None  # the small post's value ended it
    assert ReadingPostEvaluation.objects.filter(post__instrument=site.instrument).count() == 2


def test_each_storing_post_queues_one_alarm_evaluation_in_the_outbox(client, site):
    """Each post that stores readings queues exactly one evaluation of itself, whichever way it was
    stored (COPY for new readings, INSERT ... ON CONFLICT for a re-send with new ones); a post that
    stores nothing, or is refused, queues none."""
    first = [reading(1, now_minus(minutes=2))]
    assert post(client, site, {"readings": first}).status_code == 201  # COPY
    assert post(client, site, {"readings": [*first, reading(2, now_minus(minutes=1))]}).status_code == 201
    assert post(client, site, {"readings": first}).status_code == 201  # duplicates only
    assert post(client, site, {"readings": [reading(1, now_minus(minutes=2), value=6.2)]}).status_code == 409

    posts = list(ReadingPost.objects.filter(instrument=site.instrument).order_by("pk"))
    assert [row.accepted for row in posts] == [1, 1, 0]
    # This test's posts only (ids from the first on, the refused one's included): another test may
    # have committed work of its own on a reused database.
    queued = list(OutboxMessage.objects.filter(task_name="ebr.alarms_evaluate", kwargs__post_id__gte=posts[0].pk)
                  .order_by("pk").values_list("kwargs", "dispatched_at", "attempts", "last_error"))
    assert queued == [({"post_id": posts[0].pk}, None, 0, ""), ({"post_id": posts[1].pk}, None, 0, "")]


def test_only_relay_sent_work_can_be_queued_with_the_row_it_is_about():
    """`enqueue_for_new_row_sql` sends nothing after commit itself: work the relay does not send
    would wait in the outbox for the sweep."""
    from qms.outbox import enqueue_for_new_row_sql

    with pytest.raises(ValueError, match="not relay-sent"):
        enqueue_for_new_row_sql("INSERT INTO t DEFAULT VALUES RETURNING id", task_name="qms.reminders_send",
                                key="post_id")



def test_readings_follow_the_equipment_assignment_at_their_time(client, site):
    use = site.batch.equipment_uses.get()
    batch_services.equipment_release(actor=site.who.supervisor, use=use, ended_at=now_minus(hours=1))
    second = running_batch(site.who, site.version, None)
    batch_services.equipment_assign(actor=site.who.supervisor, batch=second, equipment=site.equipment,
                                    started_at=now_minus(minutes=30))

    response = post(client, site, {"readings": [reading(1, now_minus(hours=2)), reading(2, now_minus(minutes=10))]})

    assert response.status_code == 201, response.content
    assert dict(Reading.objects.filter(instrument=site.instrument).values_list("seq", "batch__number")) == {
        1: site.batch.number, 2: second.number}


def test_explicit_batch_not_assigned_at_ts_is_403_and_nothing_stored(client, site):
    other = running_batch(site.who, site.version, None)
    before = stored(site)

    response = post(client, site, {"batch": other.number, "readings": [reading(1, now_minus(minutes=5))]})

    assert response.status_code == 403
    assert response.json()["errors"][0]["index"] == 0
    assert stored(site) == before


def test_explicit_batch_before_its_assignment_is_403(client, site):
    response = post(client, site, {"batch": site.batch.number, "readings": [reading(1, now_minus(days=3))]})

    assert response.status_code == 403


def test_unknown_explicit_batch_is_403(client, site):
    response = post(client, site, {"batch": "B-1999-0001", "readings": [reading(1, now_minus(minutes=5))]})

    assert response.status_code == 403


def test_no_batch_assigned_at_ts_is_422_and_nothing_stored(client, site):
    before = stored(site)

    response = post(client, site, {"readings": [reading(1, now_minus(minutes=5)), reading(2, now_minus(days=4))]})

    assert response.status_code == 422
    assert [e["index"] for e in response.json()["errors"]] == [1]
    assert stored(site) == before


def test_resent_readings_are_counted_as_duplicates_and_stored_once(client, site):
    body = {"readings": [reading(1, now_minus(minutes=3)), reading(2, now_minus(minutes=2))]}
    post(client, site, body)

    again = post(client, site, {"readings": [*body["readings"], reading(3, now_minus(minutes=1))]})

    assert again.status_code == 201
    assert again.json()["accepted"] == 1 and again.json()["duplicates"] == 2
    assert Reading.objects.filter(instrument=site.instrument).count() == 3
    assert OutboxMessage.objects.filter(task_name="ebr.alarms_evaluate").count() >= 2


def test_readings_out_of_seq_order_are_stored_exactly_as_sent_by_either_path(client, site):
    """New readings go in by COPY, a re-send by INSERT ... ON CONFLICT: both keep every digit."""
    moment = now_minus(minutes=4).replace(microsecond=123457)
    sent = [reading(30, moment, "temp", 37.123456789012345), reading(10, moment, "do", 41),
            {**reading(20, moment + timedelta(seconds=1), "ph", 0.1 + 0.2),
             "ts": (moment + timedelta(seconds=1)).astimezone(timezone.get_fixed_timezone(150)).isoformat()}]

    first = post(client, site, {"readings": sent})
    again = post(client, site, {"readings": [*reversed(sent), reading(5, moment, "ph", 7.0)]})

    assert first.status_code == 201 and first.json()["accepted"] == 3
    assert again.status_code == 201, again.content
    assert (again.json()["accepted"], again.json()["duplicates"]) == (1, 3)
    rows = {r.seq: (r.ts, r.parameter.code, r.value, r.unit)
            for r in Reading.objects.filter(instrument=site.instrument)}
    assert rows == {30: (moment, "temp", 37.123456789012345, "Cel"), 10: (moment, "do", 41.0, "%"),
                    20: (moment + timedelta(seconds=1), "ph", 0.1 + 0.2, "[pH]"), 5: (moment, "ph", 7.0, "[pH]")}


def test_same_seq_with_other_content_is_409_and_nothing_of_the_request_is_stored(client, site):
    post(client, site, {"readings": [reading(1, now_minus(minutes=3), value=7.1)]})
    before = stored(site)

    response = post(client, site, {"readings": [reading(2, now_minus(minutes=2)),
                                                reading(1, now_minus(minutes=3), value=7.2)]})

    assert response.status_code == 409
    assert response.json()["errors"] == [{"index": 1, "field": "seq",
                                          "message": "seq 1 was already received with other content."}]
    assert stored(site) == before


def test_same_seq_twice_in_one_request(client, site):
    one = reading(1, now_minus(minutes=3))
    identical = post(client, site, {"readings": [one, one]})
    conflicting = post(client, site, {"readings": [reading(5, now_minus(minutes=1)),
                                                   reading(5, now_minus(minutes=1), value=7.3)]})

    assert identical.status_code == 201 and identical.json()["duplicates"] == 1
    assert conflicting.status_code == 409
    assert Reading.objects.filter(instrument=site.instrument).count() == 1


def test_two_instruments_may_use_the_same_seq(client, site):
    other = instrument_register(actor=SEED, name=unique("counter"), equipment=site.equipment)

    first = post(client, site, {"readings": [reading(1, now_minus(minutes=3))]})
    second = post(client, site, {"readings": [reading(1, now_minus(minutes=3), value=7.0)]}, token=other.token)

    assert first.status_code == second.status_code == 201


def test_readings_and_originals_cannot_be_changed_and_originals_are_chained(client, site):
    post(client, site, {"readings": [reading(1, now_minus(minutes=3))]})
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for sql in ("UPDATE ebr_reading SET value = 0", "DELETE FROM ebr_reading", "TRUNCATE ebr_reading CASCADE",
                "UPDATE ebr_readingpost SET accepted = 0", "DELETE FROM ebr_readingpost"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    assert AuditedTable.objects.filter(table_name="ebr_readingpost").exists()
    assert {"ebr_historicalinstrument", "ebr_historicalalarm", "ebr_historicalinstrumentparameter"} <= set(
        AuditedTable.objects.values_list("table_name", flat=True))


def test_a_large_original_is_kept_byte_for_byte_and_its_chain_link_verifies(client, site):
    """A full post's compressed body is stored out of line as it is (no second compression by
    PostgreSQL: ebr/0013) and chained at commit with the digest the verifier recomputes
    (the chain trigger turns the row into JSON once: qms/0012)."""
    from qms.audit.chain import audit_chain_verify

    start = now_minus(hours=1)
    body = {"readings": [reading(seq, start + timedelta(seconds=seq // 3), ("ph", "do", "temp")[seq % 3],
                                 value=(7.1, 41.5, 37.0)[seq % 3] + (seq % 7) / 100) for seq in range(3000)]}
    raw = orjson.dumps(body)

    assert post(client, site, body).status_code == 201
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # chain now, as the commit would
        cursor.execute("SELECT attstorage FROM pg_attribute WHERE attrelid = 'ebr_readingpost'::regclass "
                       "AND attname = 'body'")
        assert cursor.fetchone()[0] == "e"
    stored = ReadingPost.objects.get(instrument=site.instrument)
    assert len(stored.body) > 2048  # large enough to live out of line
    assert stored.original() == raw
    report = audit_chain_verify()
    assert report.intact, report.first_break


def test_the_registry_holds_the_thirteen_initial_parameters(db):
    assert dict(InstrumentParameter.objects.values_list("code", "unit")).items() >= {
        "ph": "[pH]", "do": "%", "temp": "Cel", "glucose": "g/L", "lactate": "mmol/L", "glutamine": "mmol/L",
        "ammonia": "mmol/L", "vcd": "10*6/mL", "viability": "%", "agitation": "/min", "co2": "%",
        "particles_05": "/m3", "particles_5": "/m3"}.items()


def test_a_parameter_added_to_the_registry_can_be_posted(client, site):
    call_command("instrument_parameter_add", "osmolality", "--meaning", "osmolality", "--unit", "mosm/kg",
                 stdout=io.StringIO())

    response = post(client, site, {"readings": [reading(1, now_minus(minutes=1), "ph") | {
        "parameter": "osmolality", "unit": "mosm/kg", "value": 290}]})

    assert response.status_code == 201
    assert AuditEvent.objects.filter(event_type=Event.INSTRUMENT_PARAMETER_ADDED).exists()


# --- hostile input: 4xx, nothing stored --------------------------------------------------------

def _ts() -> str:
    return stamp(now_minus(minutes=1))


def _good(**changes):  # type: ignore[no-untyped-def]
    return {"seq": 1, "ts": _ts(), "parameter": "ph", "value": 7.1, "unit": "[pH]", **changes}


BAD_BODIES = {
    "not json": lambda: b"this is not json",
    "truncated json": lambda: b'{"readings": [',
    "empty body": lambda: b"",
    "nan literal": lambda: b'{"readings": [{"seq": 1, "ts": "%s", "parameter": "ph", "value": NaN, "unit": "[pH]"}]}'
                           % _ts().encode(),
    "infinity literal": lambda: b'{"readings": [{"seq": 1, "ts": "%s", "parameter": "ph", "value": Infinity, '
                                b'"unit": "[pH]"}]}' % _ts().encode(),
    "overflowing number": lambda: b'{"readings": [{"seq": 1, "ts": "%s", "parameter": "ph", "value": 1e400, '
                                  b'"unit": "[pH]"}]}' % _ts().encode(),
    "deep nesting": lambda: b'{"readings": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "latin-1 byte in a string": lambda: b'{"readings": [{"seq": 1, "ts": "%s", "parameter": "ph", "value": 7.1, '
                                        b'"unit": "\xb5g"}]}' % _ts().encode(),
    "top-level list": lambda: orjson.dumps([_good()]),
    "readings not a list": lambda: orjson.dumps({"readings": _good()}),
    "no readings": lambda: orjson.dumps({"readings": []}),
    "missing readings": lambda: orjson.dumps({"batch": "B-2026-0001"}),
    "unknown top-level field": lambda: orjson.dumps({"readings": [_good()], "operator": "me"}),
    "batch not a string": lambda: orjson.dumps({"batch": 7, "readings": [_good()]}),
    "reading not an object": lambda: orjson.dumps({"readings": [[1, 2, 3]]}),
    "seq as string": lambda: orjson.dumps({"readings": [_good(seq="1")]}),
    "seq as float": lambda: orjson.dumps({"readings": [_good(seq=1.5)]}),
    "seq as bool": lambda: orjson.dumps({"readings": [_good(seq=True)]}),
    "negative seq": lambda: orjson.dumps({"readings": [_good(seq=-1)]}),
    "seq beyond 64 bits": lambda: b'{"readings": [{"seq": 18446744073709551616, "ts": "%s", "parameter": "ph", '
                                  b'"value": 7.1, "unit": "[pH]"}]}' % _ts().encode(),
    "value as string": lambda: orjson.dumps({"readings": [_good(value="7.1")]}),
    "value as bool": lambda: orjson.dumps({"readings": [_good(value=False)]}),
    "value null": lambda: orjson.dumps({"readings": [_good(value=None)]}),
    "value object": lambda: orjson.dumps({"readings": [_good(value={"v": 1})]}),
    "ts as number": lambda: orjson.dumps({"readings": [_good(ts=1764234000)]}),
    "ts without zone": lambda: orjson.dumps({"readings": [_good(ts=_ts().rstrip("Z"))]}),
    "ts date only": lambda: orjson.dumps({"readings": [_good(ts="2026-11-27")]}),
    "ts garbage": lambda: orjson.dumps({"readings": [_good(ts="yesterday at noon")]}),
    "ts impossible date": lambda: orjson.dumps({"readings": [_good(ts="2026-02-30T10:00:00Z")]}),
    "ts in the future": lambda: orjson.dumps({"readings": [_good(ts=stamp(timezone.now() + timedelta(minutes=6)))]}),
    "ts stale": lambda: orjson.dumps({"readings": [_good(ts=stamp(timezone.now() - timedelta(days=400)))]}),
    "unknown parameter": lambda: orjson.dumps({"readings": [_good(parameter="ph_x")]}),
    "parameter not a string": lambda: orjson.dumps({"readings": [_good(parameter=["ph"])]}),
    "wrong unit": lambda: orjson.dumps({"readings": [_good(unit="pH")]}),
    "unit null": lambda: orjson.dumps({"readings": [_good(unit=None)]}),
    "missing field": lambda: orjson.dumps({"readings": [{"seq": 1, "ts": _ts(), "parameter": "ph", "value": 7.1}]}),
    "unknown reading field": lambda: orjson.dumps({"readings": [_good(quality="good")]}),
    "nul character": lambda: orjson.dumps({"batch": "B\u0000", "readings": [_good()]}),
    "field given twice": lambda: orjson.dumps({"readings": [_good()]}).replace(b'"seq":1', b'"seq":1,"seq":2'),
    "escaped field given twice": lambda: orjson.dumps({"readings": [_good()]}).replace(
        b'"seq":1', b'"seq":1,"\\u0073eq":2'),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_hostile_input_is_refused_with_400_and_nothing_stored(client, site, case):
    before = stored(site)

    response = post(client, site, BAD_BODIES[case](), raw=True)

    assert response.status_code == 400, (case, response.content[:300])
    errors = response.json()["errors"]
    assert errors and all({"index", "field", "message"} <= set(error) for error in errors)
    assert stored(site) == before


def test_one_bad_reading_refuses_the_whole_request_listing_every_problem(client, site):
    readings = [reading(i, now_minus(minutes=1)) for i in range(1, 6)]
    readings[2]["value"] = "NaN"
    readings[4]["unit"] = "mol"
    before = stored(site)

    response = post(client, site, {"readings": readings})

    assert response.status_code == 400
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(2, "value"), (4, "unit")]
    assert stored(site) == before


def test_nan_and_infinity_as_most_json_encoders_write_them_are_named_by_reading_and_field(client, site):
    """Python's json.dumps (and many instrument gateways) write non-finite floats as bare NaN and
    Infinity, which is not JSON: the answer still says which readings and fields hold them."""
    import json

    readings = [reading(i, now_minus(minutes=1)) for i in range(1, 5)]
    readings[1]["value"], readings[3]["value"] = float("nan"), float("-inf")
    before = stored(site)

    response = post(client, site, json.dumps({"readings": readings}).encode(), raw=True)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "value"), (3, "value")]
    assert "finite" in errors[0]["message"]
    assert stored(site) == before


@pytest.mark.parametrize("value", [1e308, -1.7e308, 1e155, 1.000001e15, 10**16])
def test_a_value_no_instrument_measures_is_refused_so_that_means_cannot_overflow(client, site, value):
    """One 1e308 stored in the append-only table would make every later mean of its bucket (the
    GET with `bucket`, the batch chart, the PDF) overflow in PostgreSQL for good."""
    readings = [reading(1, now_minus(minutes=1)), reading(2, now_minus(minutes=1), value=value)]
    before = stored(site)

    response = post(client, site, {"readings": readings})

    assert response.status_code == 400
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(1, "value")]
    assert "1e15" in response.json()["errors"][0]["message"]
    assert stored(site) == before


def test_the_largest_values_allowed_still_average_within_a_bucket(client, site):
    moment = now_minus(minutes=1)
    readings = [reading(seq, moment, value=1e15) for seq in range(1, 2001)]

    assert post(client, site, {"readings": readings}).status_code == 201
    response = client.get(f"/api/v1/batches/{site.batch.number}/readings?parameter=ph&bucket=1h",
                          HTTP_AUTHORIZATION=f"Bearer {site.token}")

    assert response.status_code == 200
    [bucket] = response.json()["results"]
    assert (bucket["mean"], bucket["max"], bucket["n"]) == (1e15, 1e15, 2000)


def test_a_number_beyond_the_float_range_is_named_by_reading_and_field(client, site):
    """1e400 is valid JSON (RFC 8259 sets no range) but no float: the value's own error, not "not JSON"."""
    body = (b'{"readings": [' + orjson.dumps(reading(1, now_minus(minutes=1))) + b', '
            + orjson.dumps(reading(2, now_minus(minutes=1))).replace(b'"value":7.1', b'"value":1e400') + b']}')
    assert b"1e400" in body
    before = stored(site)

    response = post(client, site, body, raw=True)

    assert response.status_code == 400
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(1, "value")]
    assert stored(site) == before


def test_a_field_given_twice_is_refused_by_reading_and_field_whichever_copy_a_parser_keeps(client, site):
    """{"value": 7.1, "value": 9.9}: parsers differ on which one counts, so the stored value and the
    kept original could say different things. Refused, also when both copies agree."""
    good = orjson.dumps(reading(1, now_minus(minutes=1)))
    twice = orjson.dumps(reading(2, now_minus(minutes=1))).replace(b'"value":7.1', b'"value":7.1,"value":9.9')
    same = orjson.dumps(reading(3, now_minus(minutes=1))).replace(b'"unit":"[pH]"', b'"unit":"[pH]", "unit":"[pH]"')
    body = b'{"readings": [' + b", ".join([good, twice, same]) + b"]}"
    before = stored(site)

    response = post(client, site, body, raw=True)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "value"), (2, "unit")]
    assert "more than once" in errors[0]["message"]
    assert stored(site) == before


def test_readings_given_twice_in_the_body_are_refused_as_a_whole(client, site):
    body = (b'{"readings": [], "readings": [' + orjson.dumps(reading(1, now_minus(minutes=1))) + b"]}")
    before = stored(site)

    response = post(client, site, body, raw=True)

    assert response.status_code == 400
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(None, "readings")]
    assert stored(site) == before


def test_a_body_that_sends_batch_as_null_is_stored(client, site):
    body = {"batch": None, "readings": [reading(seq, now_minus(minutes=1)) for seq in range(1, 4)]}

    response = post(client, site, body)

    assert response.status_code == 201, response.content
    assert response.json()["accepted"] == 3


def test_an_integer_past_64_bits_is_still_reported_as_json_the_server_cannot_read(client, site):
    body = b'{"readings": [' + orjson.dumps(reading(1, now_minus(minutes=1))).replace(
        b'"seq":1', b'"seq":100000000000000000000000000000') + b"]}"

    response = post(client, site, body, raw=True)

    assert response.status_code == 400
    assert "NaN" not in response.json()["errors"][0]["message"]


def test_a_post_full_of_nan_gets_at_most_the_usual_hundred_errors(client, site):
    import json

    readings = [reading(i, now_minus(minutes=1), value=float("nan")) for i in range(1, 1001)]

    response = post(client, site, json.dumps({"readings": readings}).encode(), raw=True)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert len(errors) == 101 and errors[99]["index"] == 99 and errors[-1]["index"] is None
    assert "Stopped after 100" in errors[-1]["message"]


def test_a_leap_second_is_refused_with_a_message_that_says_so(client, site):
    """RFC 3339 allows 23:59:60; nothing here can hold it, so the instrument is told how to send it."""
    moment = now_minus(days=1).strftime("%Y-%m-%dT23:59:60Z")
    before = stored(site)

    response = post(client, site, {"readings": [_good(ts=moment)]})

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (0, "ts") and "leap second" in error["message"]
    assert stored(site) == before


def test_future_tolerance_is_five_minutes(client, site):
    response = post(client, site, {"readings": [reading(1, timezone.now() + timedelta(minutes=4))]})

    assert response.status_code == 201


def test_more_than_5000_readings_is_413(client, site):
    moment = now_minus(minutes=1)
    response = post(client, site, {"readings": [reading(i, moment) for i in range(5001)]})

    assert response.status_code == 413
    assert stored(site) == (0, 0)


def test_5000_readings_are_accepted(client, site):
    moment = now_minus(minutes=1)
    response = post(client, site, {"readings": [reading(i, moment) for i in range(5000)]})

    assert response.status_code == 201 and response.json()["accepted"] == 5000


def test_a_large_body_under_the_cap_is_read_whole(client, site):
    body = orjson.dumps({"readings": [reading(1, now_minus(minutes=1))]})
    padded = body[:-1] + b" " * (6 * 1024 * 1024) + b"}"  # 6 MB: beyond Django's 2.5 MB form limit

    response = post(client, site, padded, raw=True)

    assert response.status_code == 201
    assert ReadingPost.objects.get(instrument=site.instrument).original() == padded


@override_settings(INSTRUMENT_MAX_BODY_BYTES=10_000)
def test_a_body_over_the_size_cap_is_413(client, site):
    response = post(client, site, b"{" + b" " * 20_000 + b"}", raw=True)

    assert response.status_code == 413
    assert Reading.objects.filter(instrument=site.instrument).count() == 0


# --- authentication and authorisation ------------------------------------------------------------

@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ", "Bearer ebr_not-a-real-token", "Token abc",
                                    "Bearer " + "x" * 500, "Bearer ebr_\u00e9t\u00e9"])
def test_missing_or_bad_token_is_401_and_nothing_stored(client, site, header):
    headers = {"HTTP_AUTHORIZATION": header} if header is not None else {}

    response = client.post(URL, data=orjson.dumps({"readings": [reading(1, now_minus(minutes=1))]}),
                           content_type="application/json", **headers)

    assert response.status_code == 401
    assert response.json()["errors"][0]["message"]
    assert stored(site) == (0, 0)


def test_revoked_token_is_401(client, site):
    out = io.StringIO()
    call_command("revoke_instrument", site.instrument.name, stdout=out)

    response = post(client, site, {"readings": [reading(1, now_minus(minutes=1))]})

    assert response.status_code == 401
    assert "revoked" in out.getvalue()
    assert AuditEvent.objects.filter(event_type=Event.INSTRUMENT_REVOKED, target_id=str(site.instrument.pk)).exists()


def test_create_instrument_prints_the_token_once_and_stores_only_its_hash(db):
    equipment = bioreactor()
    out, err = io.StringIO(), io.StringIO()

    call_command("create_instrument", "BR-X-controller", "--equipment", equipment.code, stdout=out, stderr=err)

    token = out.getvalue().strip()
    instrument = Instrument.objects.get(name="BR-X-controller")
    assert token.startswith("ebr_") and len(token) > 40
    assert instrument.token_hash == token_digest(token) and token not in instrument.token_hash
    assert instrument.token_prefix == token[:12]
    assert "only once" in err.getvalue()
    event = AuditEvent.objects.get(event_type=Event.INSTRUMENT_REGISTERED, target_id=str(instrument.pk))
    assert token not in str(event.data) and event.data["equipment"] == equipment.code
    assert not any(token in str(h.__dict__) for h in instrument.history.all())


def test_create_instrument_on_unknown_equipment_exits_2_with_one_line(db):
    import subprocess
    import sys

    from tests.conftest import ROOT

    result = subprocess.run([sys.executable, "manage.py", "create_instrument", "X", "--equipment", "NO-SUCH"],
                            cwd=ROOT, capture_output=True, text=True, env=_env_for_subprocess())

    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "NO-SUCH" in result.stderr
    assert result.stdout == ""


def test_an_instrument_name_that_differs_only_in_case_is_refused(db):
    from django.core.management.base import CommandError

    equipment = bioreactor()
    call_command("create_instrument", "BSC-CTL", "--equipment", equipment.code, stdout=io.StringIO(),
                 stderr=io.StringIO())

    with pytest.raises(CommandError, match="already registered"):
        call_command("create_instrument", "bsc-ctl", "--equipment", equipment.code, stdout=io.StringIO(),
                     stderr=io.StringIO())

    assert Instrument.objects.filter(name__iexact="bsc-ctl").count() == 1


def _env_for_subprocess() -> dict[str, str]:
    import os

    from tests.conftest import database_url

    return {**os.environ, "DATABASE_URL": database_url()}


def test_last_use_is_recorded_at_most_once_a_minute(client, site):
    post(client, site, {"readings": [reading(1, now_minus(minutes=1))]})
    first = Instrument.objects.get(pk=site.instrument.pk).last_used_at
    post(client, site, {"readings": [reading(2, now_minus(minutes=1))]})

    assert first is not None
    assert Instrument.objects.get(pk=site.instrument.pk).last_used_at == first
    assert site.instrument.history.count() == 1  # registration only: use is not a GxP change


@override_settings(INSTRUMENT_RATE_LIMIT="3/h")  # an hour's window: the test never straddles two
def test_requests_beyond_the_token_rate_limit_are_429(client, site):
    responses = [post(client, site, {"readings": [reading(i, now_minus(minutes=1))]}) for i in range(5)]

    assert [response.status_code for response in responses] == [201, 201, 201, 429, 429]
    assert 0 < int(responses[-1]["Retry-After"]) <= 3600
    assert responses[-1].json()["errors"][0]["message"].startswith("Request was throttled")
    assert Reading.objects.filter(instrument=site.instrument).count() == 3


@override_settings(INSTRUMENT_RATE_LIMIT="100/min")
def test_the_rate_counter_of_a_window_expires_with_it(client, site):
    import redis
    from django.conf import settings

    post(client, site, {"readings": [reading(1, now_minus(minutes=1))]})

    counters = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    # The token prefix too: a test database made afresh numbers its instruments from 1 again.
    keys = counters.keys(f"ebr:throttle:instrument:{site.instrument.pk}:{site.instrument.token_prefix}:*")
    assert len(keys) == 1 and int(counters.get(keys[0])) == 1
    assert 0 < counters.ttl(keys[0]) <= 61, "a counter without expiry would stay in Redis for good"


def test_an_instrument_token_can_do_nothing_else(client, site):
    auth = site.auth
    assert client.get("/api/docs/", **auth).status_code in (401, 403)
    assert client.get("/batches/", **auth).status_code == 302  # to the login page
    assert client.get(f"/api/v1/batches/{site.batch.number}/readings", **auth).status_code == 200
    assert client.post(f"/batches/{site.batch.number}/hold/", {"reason": "x"}, **auth).status_code in (302, 403)


def test_people_cannot_post_readings(client, site):
    login(client, site.who.supervisor)  # a session is no instrument token: the endpoint does not know it

    response = client.post(URL, data=orjson.dumps({"readings": [reading(1, now_minus(minutes=1))]}),
                           content_type="application/json")

    assert response.status_code == 401
    assert stored(site) == (0, 0)


# --- reading back ----------------------------------------------------------------------------

@pytest.fixture
def series(client, site):  # type: ignore[no-untyped-def]
    start = now_minus(hours=3).replace(second=0, microsecond=0)
    readings = [reading(i, start + timedelta(minutes=i), "ph", 7.0 + i / 1000) for i in range(120)]
    readings += [reading(1000 + i, start + timedelta(minutes=i), "do", 40.0) for i in range(0, 120, 10)]
    assert post(client, site, {"readings": readings}).status_code == 201
    return start


def test_readings_are_paginated_in_time_order_with_next_links(client, site, series):
    login(client, site.who.auditor)
    url = f"/api/v1/batches/{site.batch.number}/readings?parameter=ph&limit=50"
    seen, pages = [], 0
    while url:
        page = client.get(url).json()
        assert page["count"] == 120
        seen += page["results"]
        url, pages = page["next"], pages + 1
    assert pages == 3
    assert [r["seq"] for r in seen] == list(range(120))
    assert seen[0] == {"seq": 0, "ts": stamp(series), "parameter": "ph", "value": 7.0, "unit": "[pH]",
                       "instrument": site.instrument.name}


def test_readings_can_be_filtered_by_time(client, site, series):
    login(client, site.who.auditor)
    start, end = stamp(series + timedelta(minutes=10)), stamp(series + timedelta(minutes=20))

    page = client.get(f"/api/v1/batches/{site.batch.number}/readings", {"from": start, "to": end}).json()

    assert page["count"] == 11  # 10 ph + 1 do
    assert page["results"][0]["ts"] == start


def test_buckets_give_min_mean_max_and_count(client, site, series):
    login(client, site.who.auditor)

    page = client.get(f"/api/v1/batches/{site.batch.number}/readings",
                      {"parameter": "ph", "bucket": "60m", "limit": 10}).json()

    assert sum(bucket["n"] for bucket in page["results"]) == 120
    first = page["results"][0]
    assert set(first) == {"start", "min", "mean", "max", "n"}
    assert first["min"] <= first["mean"] <= first["max"]


@pytest.mark.parametrize("query", [{"bucket": "5m"}, {"bucket": "5x", "parameter": "ph"}, {"parameter": "nope"},
                                   {"from": "2026-11-27T10:00:00"}, {"cursor": "garbage!"}, {"limit": "0"},
                                   {"from": "2026-11-27T10:00:00Z", "to": "2026-11-27T09:00:00Z"}])
def test_bad_queries_are_400(client, site, query):
    login(client, site.who.auditor)

    assert client.get(f"/api/v1/batches/{site.batch.number}/readings", query).status_code == 400


@pytest.mark.parametrize("bucket", ["5x", "1.5h", "0m", "200h"])
def test_a_bad_bucket_says_what_a_bucket_looks_like(client, site, bucket):
    login(client, site.who.auditor)

    answer = client.get(f"/api/v1/batches/{site.batch.number}/readings", {"parameter": "ph", "bucket": bucket})

    assert answer.status_code == 400
    (error,) = answer.json()["errors"]
    assert error["field"] == "bucket" and "e.g. 60s, 5m or 1h" in error["message"]


def test_unknown_batch_is_404(client, site):
    login(client, site.who.auditor)

    assert client.get("/api/v1/batches/B-1999-9999/readings").status_code == 404
    assert client.get("/api/v1/batches/%00/readings").status_code == 404


def test_a_role_without_batch_access_cannot_read(client, site, admin_user):
    login(client, admin_user)

    assert client.get(f"/api/v1/batches/{site.batch.number}/readings").status_code == 403


def test_anonymous_reading_is_401(client, site):
    assert client.get(f"/api/v1/batches/{site.batch.number}/readings").status_code == 401


def test_an_instrument_reads_only_its_own_readings(client, site, series):
    other = instrument_register(actor=SEED, name=unique("other"), equipment=site.equipment)

    mine = client.get(f"/api/v1/batches/{site.batch.number}/readings", **site.auth).json()
    theirs = client.get(f"/api/v1/batches/{site.batch.number}/readings",
                        HTTP_AUTHORIZATION=f"Bearer {other.token}").json()

    assert mine["count"] == 132 and theirs["count"] == 0


def test_an_instrument_cannot_tell_which_other_batches_exist(client, site):
    """Batch numbers are sequential: a token must not be able to list them. A batch its equipment was
    never assigned to answers like one that does not exist; people still see every batch."""
    elsewhere = running_batch(site.who, site.version, bioreactor())

    theirs = client.get(f"/api/v1/batches/{elsewhere.number}/readings", **site.auth)
    unknown = client.get("/api/v1/batches/B-1999-9999/readings", **site.auth)
    mine = client.get(f"/api/v1/batches/{site.batch.number}/readings", **site.auth)
    login(client, site.who.auditor)
    person = client.get(f"/api/v1/batches/{elsewhere.number}/readings")

    assert (theirs.status_code, unknown.status_code, mine.status_code, person.status_code) == (404, 404, 200, 200)
    assert theirs.json() == unknown.json()


def test_instrument_revocation_is_recorded_once(db):
    equipment = bioreactor()
    registration = instrument_register(actor=SEED, name=unique("r"), equipment=equipment)

    instrument_revoke(actor=SEED, instrument=registration.instrument, reason="Controller replaced")
    instrument_revoke(actor=SEED, instrument=registration.instrument, reason="again")

    assert AuditEvent.objects.filter(event_type=Event.INSTRUMENT_REVOKED,
                                     target_id=str(registration.instrument.pk)).count() == 1


def test_the_statements_of_every_post_are_prepared_once_per_connection(client, site):
    for seq in (1, 2, 3):
        assert post(client, site, {"readings": [reading(seq, now_minus(minutes=1))]}).status_code == 201

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [row[0] for row in cursor.fetchall()]
    for part in ("WHERE token_prefix", "FOR SHARE", "INSERT INTO ebr_readingpost", "INSERT INTO qms_outboxmessage",
                 "FROM ebr_alarm a"):
        assert sum(part in statement for statement in statements) == 1, (part, statements)
