"""Legacy paper records transcribed at go-live: historic dates are data, flagged everywhere they
show; the audit trail keeps server time; an overdue paper record is overdue at once; refusals
change nothing and use no number."""

import csv
import io
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from qms.audit import Event
from qms.models import (
    AuditEvent,
    Capa,
    CapaAction,
    Deviation,
    DeviationSource,
    DeviationStatus,
    Notification,
    NumberSequence,
)
from qms.roles import Role
from qms.selectors_dashboard import _bucket, _months, qa_dashboard
from qms.services import deviations as dev_services
from qms.services.legacy_import import PaperAction, capa_import_from_paper, deviation_import_from_paper
from qms.services.reminders import reminders_due
from tests.conftest import PASSWORD, login, person
from tests.qms import quality

pytestmark = pytest.mark.django_db


def _today():
    return timezone.localdate()


def _paper_deviation(actor, owner, **changes):  # type: ignore[no-untyped-def]
    today, now = _today(), timezone.now()
    fields = {
        "paper_reference": "PD-2025-014", "title": "Isolator glove breach found at end of session",
        "description": "Pin-hole in glove 3 of ISO-01 found at the post-session integrity test.",
        "occurred_at": now - timedelta(days=62), "discovered_at": now - timedelta(days=61),
        "opened_on": today - timedelta(days=60), "due_date": today - timedelta(days=30),
        "classification": "major", "classification_rationale": "Grade A barrier breached",
        "severity": 4, "occurrence": 2, "detectability": 3, "owner": owner,
        "immediate_actions": "Glove replaced; session batch on hold.", "reason": "Go-live transcription",
    }
    fields.update(changes)
    return deviation_import_from_paper(actor=actor, **fields)


def _paper_capa(actor, owner, **changes):  # type: ignore[no-untyped-def]
    today = _today()
    fields = {
        "paper_reference": "PC-2025-007", "title": "Glove integrity testing frequency",
        "problem_statement": "Glove breaches are found only at the end of sessions.", "source": "audit",
        "source_reference": "Internal audit IA-02", "owner": owner, "opened_on": today - timedelta(days=50),
        "actions": [PaperAction("corrective", "Test gloves before each session", owner, today - timedelta(days=10)),
                    PaperAction("preventive", "Buy a second glove tester", owner, today + timedelta(days=20))],
        "reason": "Go-live transcription",
    }
    fields.update(changes)
    return capa_import_from_paper(actor=actor, **fields)


def _footprint():
    return (Deviation.objects.count(), Capa.objects.count(), CapaAction.objects.count(), AuditEvent.objects.count(),
            Deviation.history.count(), sorted(NumberSequence.objects.values_list("prefix", "year", "last_value")),
            Notification.objects.count())


# --- deviations -------------------------------------------------------------------------------

def test_paper_deviation_past_its_due_date_is_overdue_on_the_dashboard_and_reminded(qa_reviewer, supervisor):
    deviation = _paper_deviation(qa_reviewer, supervisor)
    today = _today()

    assert deviation.status == DeviationStatus.TRIAGE and deviation.source == DeviationSource.PAPER_RECORD
    assert deviation.due_date == today - timedelta(days=30) and deviation.paper_opened_on == today - timedelta(days=60)
    assert deviation.rpn == 24 and deviation.owner == supervisor
    overdue = {item.reference: item for item in qa_dashboard(today).overdue}
    assert overdue[deviation.number].days_overdue == 30
    (reminder,) = [r for r in reminders_due(today) if r.record_type == "qms.deviation" and r.record_id == deviation.pk]
    assert reminder.kind == "overdue" and reminder.user == supervisor


def test_re_triage_counts_the_due_date_from_the_paper_opening_not_the_transcription(qa_reviewer, supervisor):
    deviation = _paper_deviation(qa_reviewer, supervisor)

    retriaged = dev_services.deviation_triage(
        actor=qa_reviewer, deviation=deviation, classification="minor", rationale="Barrier intact on re-test",
        severity=2, occurrence=2, detectability=2, owner=supervisor, reason="Re-classified after re-test")

    opened_on_paper = _today() - timedelta(days=60)
    assert retriaged.due_date == opened_on_paper + timedelta(days=30)
    assert {item.reference for item in qa_dashboard(_today()).overdue} >= {retriaged.number}


def test_dashboard_ages_and_trends_a_transcribed_deviation_by_its_paper_opening(qa_reviewer, supervisor):
    today = _today()

    def snapshot():  # type: ignore[no-untyped-def]
        board = qa_dashboard(today)
        major = next(row for row in board.open_by_class if row.key == "major")
        trend = {label: counts for label, counts, _ in board.trend_table}
        return list(major.counts), trend["Not yet investigated"]

    ages_before, trend_before = snapshot()
    _paper_deviation(qa_reviewer, supervisor)  # opened on paper 60 days ago, typed in today
    ages_after, trend_after = snapshot()

    added_age = [after - before for before, after in zip(ages_before, ages_after, strict=True)]
    assert added_age[_bucket(60)] == 1 and sum(added_age) == 1
    added_trend = [after - before for before, after in zip(trend_before, trend_after, strict=True)]
    months = [f"{month:%Y-%m}" for month in _months(today, len(trend_after))]
    assert added_trend[months.index(f"{today - timedelta(days=60):%Y-%m}")] == 1 and sum(added_trend) == 1


def test_number_comes_from_the_import_year_and_the_gapless_counter(qa_reviewer, supervisor, operator):
    last_year = timezone.now() - timedelta(days=400)
    before = quality.deviation(operator)

    deviation = _paper_deviation(qa_reviewer, supervisor, occurred_at=last_year, discovered_at=last_year,
                                 opened_on=timezone.localdate(last_year), due_date=timezone.localdate(last_year))
    after = quality.deviation(operator)

    year = _today().year
    numbers = [int(d.number.rsplit("-", 1)[1]) for d in (before, deviation, after)]
    assert deviation.number.startswith(f"DEV-{year}-") and numbers == [numbers[0], numbers[0] + 1, numbers[0] + 2]


def test_transcription_is_audited_with_server_time_transcriber_and_paper_reference(qa_reviewer, supervisor):
    started = timezone.now()

    deviation = _paper_deviation(qa_reviewer, supervisor)

    event = AuditEvent.objects.get(target_type="qms.deviation", target_id=str(deviation.pk),
                                   event_type=Event.DEVIATION_TRANSCRIBED)
    assert event.actor_id == qa_reviewer.pk and event.reason == "Go-live transcription"
    assert started <= event.occurred_at <= timezone.now(), "audit time is server time, never the paper date"
    assert event.data["paper_reference"] == "PD-2025-014"
    assert event.data["paper_opened_on"] == deviation.paper_opened_on.isoformat()
    assert event.data["paper_due_date"] == deviation.due_date.isoformat()
    assert started <= deviation.opened_at <= timezone.now()
    (history,) = deviation.history.all()
    assert history.paper_reference == "PD-2025-014" and history.history_user_id == qa_reviewer.pk
    assert started <= history.history_date <= timezone.now()


def test_transcribed_deviation_says_so_wherever_its_source_shows(qa_reviewer, supervisor):
    deviation = _paper_deviation(qa_reviewer, supervisor)

    assert deviation.get_source_display() == "Transcribed from paper record PD-2025-014"
    assert deviation.transcribed_from == "transcribed from paper record PD-2025-014"


@pytest.mark.parametrize(("changes", "field"), [
    ({"occurred_at": timezone.now() + timedelta(days=2)}, "occurred_at"),
    ({"discovered_at": timezone.now() + timedelta(days=2)}, "discovered_at"),
    ({"opened_on": timezone.localdate() + timedelta(days=1)}, "opened_on"),
    ({"due_date": timezone.localdate() - timedelta(days=61)}, "due_date"),
    ({"paper_reference": ""}, "paper_reference"),
    ({"paper_reference": "   "}, "paper_reference"),
    ({"classification": "serious"}, "classification"),
    ({"reason": ""}, "reason"),
], ids=["future-occurred", "future-discovered", "future-opened", "due-before-opened", "no-reference",
        "blank-reference", "unknown-class", "no-reason"])
def test_refused_transcription_changes_nothing(qa_reviewer, supervisor, changes, field):
    before = _footprint()

    with pytest.raises(ValidationError) as refusal:
        _paper_deviation(qa_reviewer, supervisor, **changes)

    assert field in refusal.value.message_dict
    assert _footprint() == before


def test_duplicate_paper_reference_is_refused_whatever_its_case(qa_reviewer, qa_approver, supervisor):
    first = _paper_deviation(qa_reviewer, supervisor)
    before = _footprint()

    with pytest.raises(ValidationError) as refusal:
        _paper_deviation(qa_approver, supervisor, paper_reference=" pd-2025-014 ")

    assert first.number in refusal.value.message_dict["paper_reference"][0]
    assert _footprint() == before


@pytest.mark.parametrize("persona", ["operator", "supervisor", "auditor"])
def test_only_qa_may_transcribe_paper_records(request, supervisor, persona):
    actor = request.getfixturevalue(persona)
    before = _footprint()

    with pytest.raises(PermissionDenied):
        _paper_deviation(actor, supervisor)
    with pytest.raises(PermissionDenied):
        _paper_capa(actor, supervisor)

    assert _footprint() == before


def test_owner_must_be_able_to_investigate(qa_reviewer, operator):
    with pytest.raises(ValidationError) as refusal:
        _paper_deviation(qa_reviewer, operator)

    assert "owner" in refusal.value.message_dict


# --- CAPA -------------------------------------------------------------------------------------

def test_paper_capa_with_an_action_past_due_is_overdue_and_flagged(qa_approver, supervisor):
    capa = _paper_capa(qa_approver, supervisor)
    today = _today()

    assert capa.paper_reference == "PC-2025-007" and capa.transcribed_from.endswith("PC-2025-007")
    assert capa.number.startswith(f"CAPA-{today.year}-") and capa.opened_by == qa_approver
    assert list(capa.actions.values_list("sequence", "due_date")) == [(1, today - timedelta(days=10)),
                                                                      (2, today + timedelta(days=20))]
    overdue = [item for item in qa_dashboard(today).overdue if item.link.endswith(f"/{capa.number}/")]
    assert [(item.kind, item.days_overdue) for item in overdue] == [("CAPA action", 10)]
    assert any(r.kind == "overdue" and r.record_type == "qms.capaaction" and r.user == supervisor
               for r in reminders_due(today))
    event = AuditEvent.objects.get(target_type="qms.capa", target_id=str(capa.pk), event_type=Event.CAPA_TRANSCRIBED)
    assert event.actor_id == qa_approver.pk and event.data["paper_reference"] == "PC-2025-007"
    assert AuditEvent.objects.filter(target_type="qms.capa", target_id=str(capa.pk),
                                     event_type=Event.CAPA_ACTION_ADDED).count() == 2


def test_paper_capa_may_address_a_transcribed_deviation(qa_reviewer, supervisor):
    deviation = _paper_deviation(qa_reviewer, supervisor)

    capa = _paper_capa(qa_reviewer, supervisor, source="deviation", deviations=[deviation])

    assert list(capa.deviation_links.values_list("deviation__number", flat=True)) == [deviation.number]


@pytest.mark.parametrize(("changes", "field"), [
    ({"actions": []}, "actions"),
    ({"opened_on": timezone.localdate() + timedelta(days=1)}, "opened_on"),
    ({"paper_reference": ""}, "paper_reference"),
    ({"source": "deviation"}, "deviations"),
], ids=["no-action", "future-opened", "no-reference", "deviation-source-without-deviation"])
def test_refused_capa_transcription_changes_nothing(qa_reviewer, supervisor, changes, field):
    before = _footprint()

    with pytest.raises(ValidationError) as refusal:
        _paper_capa(qa_reviewer, supervisor, **changes)

    assert field in refusal.value.message_dict
    assert _footprint() == before


def test_capa_action_due_before_the_paper_opening_is_refused(qa_reviewer, supervisor):
    today = _today()
    before = _footprint()

    with pytest.raises(ValidationError, match="before the record was opened on paper"):
        _paper_capa(qa_reviewer, supervisor, actions=[
            PaperAction("corrective", "Test gloves", supervisor, today - timedelta(days=51))])
    _paper_capa(qa_reviewer, supervisor)
    with pytest.raises(ValidationError, match="already transcribed"):
        _paper_capa(qa_reviewer, supervisor, paper_reference="pc-2025-007")

    assert Capa.objects.count() == before[1] + 1


# --- screens and exports -----------------------------------------------------------------------

def _csv(response):  # type: ignore[no-untyped-def]
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_list_page_and_csv_flag_the_transcribed_deviation(client, qa_reviewer, supervisor, auditor):
    deviation = _paper_deviation(qa_reviewer, supervisor)
    login(client, auditor)

    listing = client.get("/qms/deviations/").content.decode()
    page = client.get(f"/qms/deviations/{deviation.number}/").content.decode()
    rows = _csv(client.get("/qms/deviations/", {"format": "csv", "source": "paper_record", "q": deviation.number}))

    assert "Transcribed from paper record PD-2025-014" in listing
    assert 'id="paper-origin"' in page and "PD-2025-014" in page
    assert f"opened on paper {deviation.paper_opened_on:%Y-%m-%d}" in page
    assert rows[0][-2:] == ["transcribed_from_paper_record", "paper_opened_on"]
    assert [(r[0], r[-2], r[-1]) for r in rows[1:]] == [
        (deviation.number, "PD-2025-014", deviation.paper_opened_on.isoformat())]


def test_capa_list_page_and_csv_flag_the_transcribed_capa(client, qa_reviewer, supervisor):
    capa = _paper_capa(qa_reviewer, supervisor)
    native = quality.capa(qa_reviewer)
    login(client, qa_reviewer)

    listing = client.get("/qms/capa/").content.decode()
    page = client.get(f"/qms/capa/{capa.number}/").content.decode()
    rows = {r[0]: r for r in _csv(client.get("/qms/capa/", {"format": "csv"}))[1:]}

    assert "transcribed from paper record PC-2025-007" in listing
    assert 'id="paper-origin"' in page and "PC-2025-007" in page
    assert rows[capa.number][-2:] == ["PC-2025-007", capa.paper_opened_on.isoformat()]
    assert rows[native.number][-2:] == ["", ""]


# --- the command ------------------------------------------------------------------------------

HEADER = ["paper_reference", "title", "description", "occurred_at", "discovered_at", "opened_on", "due_date",
          "classification", "classification_rationale", "severity", "occurrence", "detectability", "owner",
          "immediate_actions"]


def _row(reference: str, owner: str, *, due_days_ago: int = 30, opened_days_ago: int = 60) -> list[str]:
    today = _today()
    moment = (timezone.localtime() - timedelta(days=opened_days_ago + 2)).strftime("%Y-%m-%d %H:%M")
    return [reference, f"Paper deviation {reference}", "Found on the paper register", moment, moment,
            (today - timedelta(days=opened_days_ago)).isoformat(), (today - timedelta(days=due_days_ago)).isoformat(),
            "Minor", "No product concerned", "2", "2", "2", owner, ""]


def _write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_paper_deviations", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_command_transcribes_every_row_and_prints_one_line_each(tmp_path, qa_reviewer, supervisor):
    path = _write(tmp_path / "paper.csv", [_row("PD-2025-101", supervisor.username),
                                           _row("PD-2025-102", supervisor.username, due_days_ago=-10)])

    code, out, err = _run(str(path), "--user", qa_reviewer.username)

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].endswith(" overdue") and not lines[1].endswith(" overdue")
    first = Deviation.objects.get(paper_reference="PD-2025-101")
    assert lines[0] == f"deviation {first.number} PD-2025-101 due {first.due_date:%Y-%m-%d} overdue"
    event = AuditEvent.objects.get(event_type=Event.DEVIATION_TRANSCRIBED, target_id=str(first.pk))
    assert event.data["source_file"] == "paper.csv" and event.actor_id == qa_reviewer.pk


@pytest.mark.parametrize(("rows", "message"), [
    ([["PD-2025-201"], ["PD-2025-202", "due-before-opened"]], "line 3 (PD-2025-202): due_date"),
    ([["PD-2025-201"], ["PD-2025-201"]], "line 3 (PD-2025-201): paper_reference"),
    ([["PD-2025-201"], ["", "no-reference"]], "line 3 (no paper reference): paper_reference"),
    ([["PD-2025-201"], ["PD-2025-203", "bad-date"]], "line 3 (PD-2025-203): occurred_at"),
    ([["PD-2025-201"], ["PD-2025-204", "unknown-owner"]], "line 3 (PD-2025-204): owner"),
    ([["PD-2025-201"], ["PD-2025-205", "nul"]], "line 3: a cell holds a NUL character"),
], ids=["due-before-opened", "duplicate-in-file", "no-reference", "bad-date", "unknown-owner", "nul-character"])
def test_command_refuses_the_whole_file_on_one_bad_row(tmp_path, qa_reviewer, supervisor, rows, message):
    built = []
    for reference, *defect in rows:
        row = _row(reference, supervisor.username)
        if defect == ["due-before-opened"]:
            row[6] = (_today() - timedelta(days=90)).isoformat()
        elif defect == ["bad-date"]:
            row[3] = "yesterday"
        elif defect == ["unknown-owner"]:
            row[12] = "nobody-here"
        elif defect == ["nul"]:
            row[2] = "Found on the\x00 paper register"
        built.append(row)
    path = _write(tmp_path / "paper.csv", built)
    before = _footprint()

    code, out, err = _run(str(path), "--user", qa_reviewer.username)

    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "nothing imported" in err and message in err
    assert _footprint() == before, "all or nothing: the good first row is not kept, no number used"


def test_command_exit_codes_for_unknown_file_user_role_and_header(tmp_path, qa_reviewer, supervisor, operator):
    good = _write(tmp_path / "paper.csv", [_row("PD-2025-301", supervisor.username)])
    headless = _write(tmp_path / "short.csv", [["PD-2025-302"]], header=["paper_reference"])
    before = _footprint()

    assert _run(str(tmp_path / "missing.csv"), "--user", qa_reviewer.username)[0] == 2
    assert _run(str(good), "--user", "nobody-here")[0] == 2
    code, _, err = _run(str(good), "--user", operator.username)
    assert code == 1 and "may not transcribe" in err
    code, _, err = _run(str(headless), "--user", qa_reviewer.username)
    assert code == 1 and "header lacks title" in err
    assert _footprint() == before


def test_batch_pdf_deviation_row_names_the_paper_record(qa_reviewer, supervisor):
    from ebr.pdf.providers import _deviation_row

    deviation = _paper_deviation(qa_reviewer, supervisor, subjects=[quality.BATCH])

    assert _deviation_row(deviation)["source"] == "Transcribed from paper record PD-2025-014"


def test_batch_pdf_capa_row_names_the_paper_record(qa_reviewer, supervisor):
    from ebr.pdf.providers import _capa_row

    capa = _paper_capa(qa_reviewer, supervisor)

    assert _capa_row(capa)["title"].endswith("\nTranscribed from paper record PC-2025-007")


def test_dashboard_overdue_list_flags_paper_records_and_exports_them(client, qa_reviewer, supervisor, auditor):
    deviation = _paper_deviation(qa_reviewer, supervisor)
    capa = _paper_capa(qa_reviewer, supervisor)
    login(client, auditor)

    board = client.get("/qms/dashboard/").content.decode()
    rows = {r[1]: r for r in _csv(client.get("/qms/dashboard/", {"format": "csv"}))[1:]}

    assert "transcribed from paper record PD-2025-014" in board
    assert "transcribed from paper record PC-2025-007" in board
    assert rows[deviation.number][0] == "Deviation" and rows[deviation.number][-1] == "PD-2025-014"
    assert rows[deviation.number][-2] == "30"
    assert rows[f"{capa.number} action 1"][-1] == "PC-2025-007"
    export = AuditEvent.objects.filter(event_type=Event.EXPORT_CREATED, actor_id=auditor.pk).get()
    # Every overdue item of the database is in the export (committed tests may have left some).
    assert export.target_label == "overdue (CSV)" and export.data["rows"] == len(rows) >= 2


def test_transcribed_deviation_goes_on_to_signed_closure_with_its_origin_signed(qa_reviewer, qa_approver,
                                                                                supervisor):
    from qms.signatures import signatures_for

    deviation = _paper_deviation(qa_reviewer, supervisor)
    quality.investigate(deviation, supervisor)
    quality.decide_no_capa(deviation, supervisor)
    quality.submit(deviation, supervisor)

    closed = dev_services.deviation_close(actor=qa_approver, deviation=deviation, password=PASSWORD,
                                          username=qa_approver.username, reason="Investigation accepted")

    assert closed.status == DeviationStatus.CLOSED and closed.paper_reference == "PD-2025-014"
    assert closed.signed_content()["paper_reference"] == "PD-2025-014"
    assert len(signatures_for(closed)) == 2
    assert deviation.number not in {item.reference for item in qa_dashboard(_today()).overdue}


# --- concurrency (committed data) --------------------------------------------------------------

def test_concurrent_transcriptions_of_one_paper_record_keep_one_and_use_no_number(committed):
    marker = uuid.uuid4().hex[:8]

    def committed_person(name: str, role: Role):  # type: ignore[no-untyped-def]
        """Created and committed on a connection of its own, so that every thread sees it."""
        made: list[object] = []
        worker = threading.Thread(target=lambda: (made.append(person(role, name)), connections.close_all()))
        worker.start()
        worker.join(60)
        return made[0]

    people = [committed_person(f"qa{n}", Role.QA_REVIEWER) for n in range(4)]
    owner = committed_person("owner", Role.SUPERVISOR)
    reference = f"PD-RACE-{marker}"
    outcomes: list[object] = []
    start = threading.Barrier(len(people))

    def transcriber(actor) -> None:  # type: ignore[no-untyped-def]
        try:
            start.wait()
            # Committed rows stay in the test database: far from due, and cancelled below, so that
            # no other test's dashboard or reminders ever sees them.
            outcomes.append(_paper_deviation(actor, owner, paper_reference=reference,
                                             due_date=_today() + timedelta(days=400)))
        except BaseException as error:
            outcomes.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=transcriber, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    kept = [o for o in outcomes if isinstance(o, Deviation)]
    refused = [o for o in outcomes if isinstance(o, ValidationError)]
    try:
        assert (len(kept), len(refused)) == (1, len(people) - 1), outcomes
        assert all("already transcribed" in str(error) for error in refused)
        after = _paper_deviation(people[0], owner, paper_reference=f"{reference}-next",
                                 due_date=_today() + timedelta(days=400))
        assert int(after.number.rsplit("-", 1)[1]) == int(kept[0].number.rsplit("-", 1)[1]) + 1, "no number lost"
        # Cancelled on this connection, whether or not a transaction wraps this test.
        dev_services.deviation_cancel(actor=people[0], deviation=after, reason="Concurrency test record")
    finally:
        for deviation in kept:
            cleanup = threading.Thread(target=lambda d=deviation: (dev_services.deviation_cancel(
                actor=people[0], deviation=d, reason="Concurrency test record"), connections.close_all()))
            cleanup.start()
            cleanup.join(60)
