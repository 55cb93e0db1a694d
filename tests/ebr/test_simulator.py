"""The bioreactor simulator: kinetics, clock, retries, restart, and an end-to-end run through HTTP."""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from ebr.models import Alarm, AlarmKind, Reading, ReadingPost, ReadingPostEvaluation
from ebr.simulator import (
    ApiClient,
    BioreactorModel,
    Clock,
    Excursion,
    Gap,
    Plan,
    SequenceState,
    SimulatorError,
    duration,
    run,
    ticks,
)

START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


# --- kinetics ----------------------------------------------------------------------------------

def test_t_cells_expand_logistically_from_half_a_million_to_about_five_million_per_ml():
    model = BioreactorModel(seed=3)

    assert model.vcd(0) == pytest.approx(0.5)
    assert 4.5 <= model.vcd(8) <= 5.5
    assert model.vcd(3) < model.vcd(5) < model.vcd(7)


def test_glucose_falls_lactate_rises_and_ph_drifts_down_within_limits():
    model = BioreactorModel(seed=3)
    day = {d: model.values(d) for d in (0, 3, 6, 8)}

    assert day[0]["glucose"] > day[3]["glucose"] > day[6]["glucose"] > day[8]["glucose"]
    assert day[0]["lactate"] < day[3]["lactate"] < day[6]["lactate"] < day[8]["lactate"]
    assert day[0]["ph"] > day[8]["ph"] and all(6.9 < values["ph"] < 7.5 for values in day.values())
    assert all(36.5 < values["temp"] < 37.5 and 30 < values["do"] < 70 for values in day.values())
    assert day[8]["agitation"] > day[0]["agitation"]


def test_durations_excursions_and_gaps_are_parsed():
    assert duration("90s") == timedelta(seconds=90) and duration("1.5d") == timedelta(hours=36)
    assert Excursion.parse("ph:6.6@12h") == Excursion("ph", 6.6, timedelta(hours=12), timedelta(minutes=30))
    assert Excursion.parse("temp:38.5@2d+1h").length == timedelta(hours=1)
    assert Gap.parse("30m@20h") == Gap(timedelta(minutes=30), timedelta(hours=20))
    for bad in ("ph6.6@12h", "nope:1@1h", "ph:6.6@soon"):
        with pytest.raises(ValueError):
            Excursion.parse(bad)
    with pytest.raises(ValueError):
        Gap.parse("30m")


def test_ticks_leave_gaps_out_and_apply_excursions():
    plan = Plan(start=START, hours=2, excursions=[Excursion.parse("ph:6.6@30m+10m")], gaps=[Gap.parse("15m@60m")])

    emitted = list(ticks(plan, BioreactorModel(seed=1)))

    moments = [moment for moment, _ in emitted]
    assert len(moments) == 120 - 15
    assert START + timedelta(minutes=65) not in moments
    ph = {moment: dict(values)["ph"] for moment, values in emitted}
    assert all(abs(ph[START + timedelta(minutes=m)] - 6.6) < 0.05 for m in range(30, 40))
    assert all(ph[START + timedelta(minutes=m)] > 7.0 for m in (29, 40))
    assert "vcd" in dict(emitted[0][1]) and "vcd" not in dict(emitted[1][1])  # at-line values hourly


def test_a_compressed_culture_keeps_its_kinetics_and_excursions_in_less_instrument_time():
    """A bioreactor assigned only minutes ago: two hours of culture in two minutes of instrument
    time, the same readings and the excursion at the same point of the culture."""
    excursion = [Excursion.parse("ph:6.6@30m+10m")]
    normal = list(ticks(Plan(start=START, hours=2, excursions=excursion), BioreactorModel(seed=1)))
    compressed = list(ticks(Plan(start=START, hours=2, excursions=excursion, time_scale=1 / 60),
                            BioreactorModel(seed=1)))

    assert [values for _, values in compressed] == [values for _, values in normal]
    assert [moment for moment, _ in compressed] == [START + timedelta(seconds=n) for n in range(120)]
    assert Plan(start=START, hours=2, time_scale=1 / 60).end == START + timedelta(minutes=2)


def test_the_clock_runs_faster_than_real_time_but_never_reports_the_future():
    real = [datetime(2026, 11, 27, 12, 0, tzinfo=UTC)]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        real[0] += timedelta(seconds=seconds)

    clock = Clock(real[0] - timedelta(hours=1), 3600, lambda: real[0], sleep)
    clock.wait_until(real[0] - timedelta(minutes=30))  # half an hour of simulated time: half a second
    assert sum(slept) == pytest.approx(0.5, abs=0.01)
    clock.wait_until(real[0] + timedelta(seconds=10))  # the future: wait for it in real time
    assert clock.simulated() <= real[0]
    assert sum(slept) >= 10


# --- HTTP client --------------------------------------------------------------------------------

class ScriptedServer:
    """A tiny HTTP server answering POST /api/v1/readings from a script of (status, body, headers)."""

    def __init__(self, script: list[tuple[int, dict[str, Any], dict[str, str]]]) -> None:
        self.script, self.bodies = list(script), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                status, body, headers = outer.script.pop(0)
                payload = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def scripted():  # type: ignore[no-untyped-def]
    servers: list[ScriptedServer] = []

    def start(*script: tuple[int, dict[str, Any], dict[str, str]]) -> ScriptedServer:
        servers.append(ScriptedServer(list(script)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


CREATED = (201, {"accepted": 1, "duplicates": 0, "alarms": []}, {})


def test_the_client_retries_server_errors_and_rate_limits_with_the_same_body(scripted):
    server = scripted((503, {"errors": []}, {}), (429, {"errors": []}, {"Retry-After": "2"}), CREATED)
    waits: list[float] = []
    client = ApiClient(server.url, "ebr_token", sleep=waits.append, log=lambda message: None)

    answer = client.post(b'{"readings": []}')

    assert answer["accepted"] == 1
    assert server.bodies == [b'{"readings": []}'] * 3
    assert waits == [0.5, 2.0]


def test_the_client_retries_network_errors_then_gives_up(scripted):
    client = ApiClient("http://127.0.0.1:9", "ebr_token", max_retries=3, sleep=lambda s: None, log=lambda m: None)

    with pytest.raises(SimulatorError, match="gave up after 4 attempts"):
        client.post(b"{}")


def test_the_client_does_not_retry_a_refusal(scripted):
    server = scripted((409, {"errors": [{"index": 0, "field": "seq", "message": "seq 1 was already received"}]}, {}))
    client = ApiClient(server.url, "ebr_token", sleep=lambda s: pytest.fail("no retry expected"))

    with pytest.raises(SimulatorError, match="409: seq 1 was already received"):
        client.post(b"{}")


def test_the_client_refuses_other_schemes():
    with pytest.raises(ValueError):
        ApiClient("file:///etc/passwd", "t")


# --- sequence state and restart -------------------------------------------------------------------

class FakeClient:
    def __init__(self, fail_after: int | None = None) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.fail_after = fail_after

    def post(self, body: bytes) -> dict[str, Any]:
        if self.fail_after is not None and len(self.payloads) >= self.fail_after:
            raise SimulatorError("connection lost")
        payload = json.loads(body)
        self.payloads.append(payload)
        return {"accepted": len(payload["readings"]), "duplicates": 0, "alarms": []}


def _past_clock() -> dict[str, Any]:
    return {"now": lambda: datetime(2027, 1, 1, tzinfo=UTC), "sleep": lambda s: None, "log": lambda m: None}


def test_a_restart_continues_the_sequence_and_the_culture(tmp_path: Path):
    path = tmp_path / "sim.json"
    plan = Plan(start=START, hours=3)
    first = FakeClient(fail_after=2)
    state = SequenceState.load(path)
    state.next_seq, state.culture_start = 1, START.isoformat()
    with pytest.raises(SimulatorError):
        run(plan=plan, client=first, state=state, batch="B-1", speed=1e9, batch_size=100, **_past_clock())

    resumed = SequenceState.load(path)
    last = datetime.fromisoformat(resumed.last_ts.replace("Z", "+00:00"))
    second = FakeClient()
    run(plan=Plan(start=START, hours=3, resume_from=last + timedelta(minutes=1)), client=second, state=resumed,
        batch="B-1", speed=1e9, batch_size=100, **_past_clock())

    sent = [r for payload in first.payloads + second.payloads for r in payload["readings"]]
    seqs = [r["seq"] for r in sent]
    assert seqs == list(range(1, len(sent) + 1))  # no seq twice, none skipped
    assert len({(r["ts"], r["parameter"]) for r in sent}) == len(sent)  # no reading twice
    assert sent[-1]["ts"] == "2026-11-20T10:59:00.000Z"
    assert json.loads(path.read_text())["next_seq"] == len(sent) + 1


def test_without_state_the_sequence_starts_from_the_clock(tmp_path: Path):
    state = SequenceState.load(tmp_path / "none.json")

    assert abs(state.next_seq - time.time() * 1000) < 10_000


# --- end to end: the real API, a real worker ---------------------------------------------------------

@pytest.mark.worker
def test_a_simulated_run_with_a_ph_excursion_raises_one_alarm_and_one_deviation(committed, worker, relay, broker,
                                                                                tmp_path):
    from qms.models import Deviation
    from tests.ebr.process_builders import LiveServer, bioreactor, expansion_version, people, running_batch

    who = people()
    equipment = bioreactor()
    batch = running_batch(who, expansion_version(who), equipment)
    server = LiveServer(tmp_path / "server.log", broker_url=broker.url).wait_ready()
    try:
        out = io.StringIO()
        call_command("simulate_bioreactor", "--batch", batch.number, "--hours", "24", "--speed", "20000",
                     "--url", server.url, "--excursion", "ph:6.6@12h", "--gap", "30m@20h", "--seed", "7",
                     "--state", str(tmp_path / "state.json"), stdout=out, stderr=io.StringIO())
    finally:
        server.stop()
    posts = ReadingPost.objects.filter(instrument__equipment=equipment)
    deadline = time.monotonic() + 120
    while ReadingPostEvaluation.objects.filter(post__in=posts).count() < posts.count():
        assert time.monotonic() < deadline, worker.log.read_text()[-3000:]
        time.sleep(0.5)

    assert "posted" in out.getvalue()
    assert Reading.objects.filter(batch=batch).count() > 7000
    excursions = list(Alarm.objects.filter(batch=batch).exclude(kind=AlarmKind.FEED_GAP))
    assert [(alarm.kind, alarm.parameter.code) for alarm in excursions] == [("action", "ph")]
    (alarm,) = excursions
    culture_start = min(Reading.objects.filter(batch=batch).values_list("ts", flat=True))
    assert alarm.opened_at - culture_start == timedelta(hours=12)
    assert alarm.closed_at - alarm.opened_at == timedelta(minutes=30)
    deviation = Deviation.objects.get(number=alarm.deviation_number)
    assert deviation.source == "instrument_alarm"
    assert Deviation.objects.filter(subjects__subject_type="ebr.batch", subjects__subject_id=str(batch.pk)).count() == 1
    (gap,) = Alarm.objects.filter(batch=batch, kind=AlarmKind.FEED_GAP)
    assert gap.closed_at - gap.opened_at == timedelta(minutes=31)  # last reading before, first after
    assert timezone.now() - max(Reading.objects.filter(batch=batch).values_list("ts", flat=True)) < timedelta(
        minutes=5)  # the simulated day ends about now


@pytest.mark.worker
def test_a_run_right_after_the_bioreactor_was_assigned_compresses_the_culture_and_ends_on_time(
        committed, worker, relay, broker, tmp_path):
    """As after seed_demo: the bioreactor was assigned a moment ago, and an integrator runs two
    hours of culture at 3600x. The run takes seconds, not two hours; every reading lies between
    the assignment and now (none refused as from the future or from before the assignment); the
    pH excursion still gives one alarm and one deviation."""
    from qms.models import Deviation
    from tests.ebr.process_builders import LiveServer, bioreactor, expansion_version, people, running_batch

    who = people()
    equipment = bioreactor()
    batch = running_batch(who, expansion_version(who), equipment, assigned_since=timedelta(0))
    assigned = batch.equipment_uses.get().started_at
    server = LiveServer(tmp_path / "server.log", broker_url=broker.url).wait_ready()
    began = time.monotonic()
    try:
        out = io.StringIO()
        call_command("simulate_bioreactor", "--batch", batch.number, "--hours", "2", "--speed", "3600",
                     "--url", server.url, "--excursion", "ph:6.6@1h", "--seed", "7",
                     "--state", str(tmp_path / "state.json"), stdout=out, stderr=io.StringIO())
    finally:
        server.stop()
    took = time.monotonic() - began
    posts = ReadingPost.objects.filter(instrument__equipment=equipment)
    deadline = time.monotonic() + 120
    while ReadingPostEvaluation.objects.filter(post__in=posts).count() < posts.count():
        assert time.monotonic() < deadline, worker.log.read_text()[-3000:]
        time.sleep(0.5)

    assert took < 60, f"two hours at 3600x took {took:.0f} s"
    readings = Reading.objects.filter(batch=batch)
    assert readings.count() == 120 * 5 + 2 * 6  # online every minute, at-line hourly: none refused
    assert assigned <= min(readings.values_list("ts", flat=True))
    assert max(readings.values_list("ts", flat=True)) <= timezone.now()
    (alarm,) = Alarm.objects.filter(batch=batch)
    assert (alarm.kind, alarm.parameter.code, alarm.is_open) == ("action", "ph", False)
    assert Deviation.objects.filter(subjects__subject_type="ebr.batch", subjects__subject_id=str(batch.pk)).count() == 1


def test_a_finished_compressed_culture_is_followed_by_a_new_one_not_an_empty_run(tmp_path: Path):
    """Readings carry milliseconds, so the last reading of a compressed culture ends a hair before
    the culture's computed end: a second run must start a new culture, not resume an empty rest."""
    from ebr.management.commands.simulate_bioreactor import Command
    from ebr.simulator import rfc3339

    scale = 0.003553944166666667  # 2 h into 25.6 s, as after seed_demo
    began = datetime(2026, 11, 28, 16, 46, 10, tzinfo=UTC)
    last = list(ticks(Plan(start=began, hours=2, time_scale=scale), BioreactorModel(seed=1)))[-1][0]
    state = SequenceState.load(tmp_path / "state.json")
    state.batch, state.culture_start, state.time_scale, state.last_ts = "B-1", began.isoformat(), scale, rfc3339(last)
    options = {"hours": 2.0, "speed": 3600.0, "interval": timedelta(seconds=60), "start": None, "excursion": [],
               "gap": [], "batch": "B-1"}

    plan = Command(stdout=io.StringIO(), stderr=io.StringIO())._plan(options, state, None)

    assert plan.resume_from is None
    assert len(list(ticks(plan, BioreactorModel(seed=1)))) == 120


@pytest.mark.parametrize("assigned_in", [timedelta(hours=1), timedelta(seconds=1)])
def test_no_room_for_the_culture_is_a_clear_error_not_a_culture_running_backwards(tmp_path: Path, assigned_in):
    """An assignment (or a last reading) at or after the run's end leaves no time to compress the
    culture into: one line saying so, nothing posted (before, a negative scale ran time backwards)."""
    from types import SimpleNamespace

    from django.core.management.base import CommandError

    from ebr.management.commands.simulate_bioreactor import Command

    state = SequenceState.load(tmp_path / "state.json")
    options = {"hours": 2.0, "speed": 3600.0, "interval": timedelta(seconds=60), "start": None, "excursion": [],
               "gap": [], "batch": "B-1"}
    use = SimpleNamespace(started_at=datetime.now(UTC) + assigned_in)

    with pytest.raises(CommandError, match="no room for 2 h of culture"):
        Command(stdout=io.StringIO(), stderr=io.StringIO())._plan(options, state, use)


def test_no_request_holds_more_than_the_batch_size(tmp_path: Path):
    """A tick adds five to eleven readings at once; a request must still stay within --batch-size
    (the server evaluates posts up to INSTRUMENT_EVALUATE_INLINE_MAX before answering)."""
    client = FakeClient()
    state = SequenceState.load(tmp_path / "state.json")
    run(plan=Plan(start=START, hours=3), client=client, state=state, batch="B-1", speed=1e9, batch_size=12,
        **_past_clock())

    sizes = [len(payload["readings"]) for payload in client.payloads]
    assert max(sizes) <= 12 and sum(sizes) == 180 * 5 + 3 * 6  # 3 h: online every minute, at-line hourly


# --- refusing up front: nothing registered for a run that cannot post --------------------------------

def _instruments() -> int:
    from ebr.models import Instrument

    return Instrument.objects.count()


@pytest.mark.django_db
def test_a_batch_whose_bioreactor_was_released_is_refused_before_anything_is_registered(tmp_path: Path, scripted):
    """The readings would be stamped now, after the assignment ended: every post would be refused."""
    from django.core.management.base import CommandError

    from ebr.models import EquipmentUse
    from ebr.services.batches import equipment_release
    from tests.ebr.process_builders import plant

    site = plant()
    equipment_release(actor=site.who.supervisor, use=EquipmentUse.objects.get(batch=site.batch, ended_at=None))
    server = scripted()
    before = _instruments()

    with pytest.raises(CommandError, match=f"no bioreactor is assigned to batch {site.batch.number} now") as refused:
        call_command("simulate_bioreactor", "--batch", site.batch.number, "--hours", "1", "--url", server.url,
                     "--state", str(tmp_path / "state.json"), stdout=io.StringIO(), stderr=io.StringIO())

    assert refused.value.returncode == 2 and "\n" not in str(refused.value)
    assert _instruments() == before and not (tmp_path / "state.json").exists()


@pytest.mark.django_db
def test_a_server_that_cannot_be_reached_is_refused_before_anything_is_registered(tmp_path: Path):
    from django.core.management.base import CommandError

    from tests.ebr.process_builders import plant

    site = plant()
    before = _instruments()

    with pytest.raises(CommandError, match=r"cannot reach http://127\.0\.0\.1:1") as refused:
        call_command("simulate_bioreactor", "--batch", site.batch.number, "--hours", "1", "--url",
                     "http://127.0.0.1:1", "--state", str(tmp_path / "state.json"), stdout=io.StringIO(),
                     stderr=io.StringIO())

    assert "\n" not in str(refused.value) and "nothing registered" in str(refused.value)
    assert _instruments() == before


def _half_done_compressed_culture(tmp_path: Path) -> SequenceState:
    from ebr.simulator import rfc3339

    scale = 60 / 7200  # 2 h of culture into 60 s, half of it posted by the last run just now
    began = datetime.now(UTC) - timedelta(seconds=30)
    state = SequenceState.load(tmp_path / "state.json")
    state.batch, state.culture_start, state.time_scale = "B-1", began.isoformat(), scale
    state.last_ts = rfc3339(began + timedelta(hours=1) * scale)
    return state


def _options(speed: float) -> dict[str, Any]:
    return {"hours": 2.0, "speed": speed, "interval": timedelta(seconds=60), "start": None, "excursion": [],
            "gap": [], "batch": "B-1"}


def test_a_second_run_goes_on_with_the_culture_when_that_keeps_to_its_speed(tmp_path: Path):
    """At 100x the rest of the culture (1 h) takes 36 s, and it has 30 s of its own pace left: it goes on."""
    from ebr.management.commands.simulate_bioreactor import Command

    plan = Command(stdout=io.StringIO(), stderr=io.StringIO())._plan(_options(100.0), _half_done_compressed_culture(
        tmp_path), None)

    assert plan.resume_from is not None


def test_a_second_run_that_cannot_keep_to_its_speed_says_so_at_once(tmp_path: Path):
    """At 36000x the rest should take 0.1 s but goes on at its own pace for 30 s of real time, and no new
    culture fits before the run's end: one line saying so, instead of a run 300 times slower than asked."""
    from django.core.management.base import CommandError

    from ebr.management.commands.simulate_bioreactor import Command

    with pytest.raises(CommandError, match=r"no room for 2 h of culture.*goes on only at its own pace") as refused:
        Command(stdout=io.StringIO(), stderr=io.StringIO())._plan(_options(36000.0), _half_done_compressed_culture(
            tmp_path), None)

    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("option", [["--excursion", "ph:6.6@12h"], ["--gap", "30m@2h"]])
def test_an_excursion_or_gap_after_the_culture_ends_is_refused_not_ignored(option: list[str]):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not within the 1 h culture"):
        call_command("simulate_bioreactor", "--batch", "B-NONE-1", "--hours", "1", *option,
                     stdout=io.StringIO(), stderr=io.StringIO())
