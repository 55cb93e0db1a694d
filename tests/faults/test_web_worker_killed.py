"""A web worker killed with SIGKILL in the middle of a request (issue #9, faults 4).

The application runs under gunicorn with the production configuration. The test holds a row
lock from a connection of its own, so that the operator's request stops inside its transaction
at a known point, after it has written rows; then the gunicorn worker serving it is killed with
SIGKILL and the lock released. PostgreSQL either rolls the whole transaction back or (when it was
already committing) commits all of it: never a step without its signature, a signature without
its step, an entry without its deviation. The master starts a new worker, and the operator's
retry (the same form, the same idempotency key) leaves exactly one result.

1. A step signed as performed, killed mid-transaction: it had written the signature and the
   step's new status and waited to open the next step. Nothing of it is left; the retry signs once.
2. An out-of-specification value (entry + automatic deviation), killed while it waits on a lock
   near or at its commit (the lock is on a row its foreign keys check; whether PostgreSQL then
   commits or rolls back is its choice, and both are accepted): entry and deviation are there
   together or not at all, and the retry with the same idempotency key records nothing twice.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import timedelta
from http.cookiejar import CookieJar
from typing import Any

import psycopg
import pytest
from django.db import connections
from django.utils import timezone

from ebr.models import Entry, Equipment, Material, MaterialLot, StepExecution, StepStatus
from qms.audit import Event, create_with_reason
from qms.audit.chain import audit_chain_verify
from qms.models import AuditEvent, Deviation, Signature
from qms.roles import Role
from tests.conftest import PASSWORD, SEED, database_url, person
from tests.faults.conftest import WebServer, children, figures, wait_for

pytestmark = pytest.mark.faults


# --- an operator's browser -------------------------------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browser:
    """Cookies, CSRF and form posts, as the tablet's browser sends them (redirects not followed)."""

    def __init__(self, url: str) -> None:
        self.url, self.cookies = url, CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect)

    def _csrf(self) -> str:
        return next(cookie.value for cookie in self.cookies if cookie.name == "csrftoken")

    def request(self, path: str, fields: dict[str, str] | None = None) -> int:
        data = None
        if fields is not None:
            data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": self._csrf()}).encode()
        try:
            with self.opener.open(f"{self.url}{path}", data=data, timeout=120) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    def login(self, username: str) -> None:
        assert self.request("/login/") == 200
        assert self.request("/login/", {"username": username, "password": PASSWORD}) == 302


class InFlight(threading.Thread):
    """One request in a thread of its own: the test kills the server while it waits for the answer."""

    def __init__(self, browser: Browser, path: str, fields: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.browser, self.path, self.fields = browser, path, fields
        self.status: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.status = self.browser.request(self.path, self.fields)
        except BaseException as error:  # the connection reset by the kill is what is expected
            self.error = error


# --- the database side --------------------------------------------------------------------------------------

def _connect() -> psycopg.Connection:
    return psycopg.connect(database_url().replace("postgres://", "postgresql://"))


class RowLock:
    """`SELECT ... FOR UPDATE` held by a connection of the test's own until released."""

    def __init__(self, table: str, pk: int) -> None:
        self.connection = _connect()
        self.connection.execute(f'SELECT 1 FROM "{table}" WHERE id = %s FOR UPDATE', [pk])
        self.pid = self.connection.info.backend_pid

    def blocked(self) -> tuple[int, str] | None:
        """The backend waiting for this lock, and its statement."""
        with _connect() as probe:
            return probe.execute("SELECT pid, query FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                                 [self.pid]).fetchone()

    def release(self) -> None:
        if not self.connection.closed:
            self.connection.rollback()
            self.connection.close()


def _tables_written(pid: int) -> list[str]:
    """Tables the backend's open transaction has inserted into or updated (its RowExclusiveLocks)."""
    with _connect() as probe:
        rows = probe.execute("SELECT DISTINCT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                             "WHERE l.pid = %s AND l.mode = 'RowExclusiveLock' AND c.relkind IN ('r', 'p') "
                             "ORDER BY 1", [pid]).fetchall()
    return [name for (name,) in rows]


def _gone(pid: int) -> bool:
    with _connect() as probe:
        return probe.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0] == 0


def _kill_worker_serving(server: WebServer, lock: RowLock, thread: InFlight) -> tuple[int, str, list[str]]:
    """Wait until the request blocks on `lock`, SIGKILL the gunicorn worker, release the lock and
    wait until PostgreSQL has ended the request's backend. Returns its pid, statement and tables."""
    import os
    import signal

    blocked_pid, statement = wait_for(lock.blocked, what="the request blocked inside its transaction",
                                      log=server.log, interval=0.05)
    written = _tables_written(blocked_pid)
    (worker_pid,) = server.workers()
    os.kill(worker_pid, signal.SIGKILL)
    thread.join(60)
    assert thread.status is None and thread.error is not None, "the request was answered: nothing was cut off"
    lock.release()
    wait_for(lambda: _gone(blocked_pid), what="the killed request's database session ended")
    wait_for(lambda: [pid for pid in children(server.pid) if pid != worker_pid], what="gunicorn's new worker",
             log=server.log)
    server.wait_ready()
    for connection in connections.all():  # read what is committed now, not an older snapshot
        connection.close()
    return blocked_pid, statement, written


# --- data -------------------------------------------------------------------------------------------------

def _started_batch() -> dict[str, Any]:
    """A committed, started batch of the test master record (tests/ebr/conftest.py), uniquely named."""
    from ebr.services import batches as batch_services
    from tests.ebr.conftest import build_version, create_batch, train

    tag = uuid.uuid4().hex[:6].upper()
    today = timezone.localdate()
    media = create_with_reason(Material, actor=SEED, reason="test", code=f"MED-{tag}", name="Medium", unit="mL")
    lot = create_with_reason(MaterialLot, actor=SEED, reason="test", lot_number=f"MED-{tag}", material=media,
                             expiry_date=today + timedelta(days=100), status="released")
    bsc = create_with_reason(Equipment, actor=SEED, reason="test", code=f"BSC-{tag}", name="BSC", equipment_type="bsc",
                             calibration_due=today + timedelta(days=100), status="released")
    supervisor = person(Role.SUPERVISOR, "Sofia Supervisor")
    reviewer, approver = person(Role.QA_REVIEWER, "Quentin Reviewer"), person(Role.QA_APPROVER, "Claire Approver")
    operator, verifier = person(Role.OPERATOR, "Olivia Operator"), person(Role.OPERATOR, "Victor Verifier")
    version = build_version(supervisor, reviewer, approver, {"media": media}, code=f"MBR-{tag}")
    for trainee in (operator, verifier, supervisor):
        train(trainee, version, approver, reviewer)
    batch = batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, version))
    return {"batch": batch, "operator": operator, "verifier": verifier, "bsc": bsc.code, "medium": lot.lot_number}


def _step(batch, code: str) -> StepExecution:  # type: ignore[no-untyped-def]
    return StepExecution.objects.select_related("template").get(batch=batch, template__code=code)


def _record(step: StepExecution, operator, values: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    from ebr.services.execution import entry_record

    for parameter in step.template.parameters.exclude(kind="calculated"):
        entry_record(actor=operator, step=step, parameter=parameter, value=values[parameter.code],
                     idempotency_key=uuid.uuid4().hex)


def _signatures(step: StepExecution, meaning: str) -> int:
    return Signature.objects.filter(target_type="ebr.stepexecution", target_id=str(step.pk), meaning=meaning).count()


def _events(event: str, target_type: str, target_id: object) -> int:
    return AuditEvent.objects.filter(event_type=event, target_type=target_type, target_id=str(target_id)).count()


# --- the tests ----------------------------------------------------------------------------------------------

def test_step_signature_killed_mid_transaction_leaves_nothing_and_the_retry_signs_once(
        committed, private_redis, processes, tmp_path):
    from ebr.services.execution import step_perform, step_verify

    made = _started_batch()
    batch, operator = made["batch"], made["operator"]
    receipt, seeding, formulation = _step(batch, "1.1"), _step(batch, "2.1"), _step(batch, "2.2")
    _record(receipt, operator, {"label_ok": "yes", "temp": "5"})
    step_perform(actor=operator, step=receipt, password=PASSWORD, username=operator.username)
    step_verify(actor=made["verifier"], step=receipt, password=PASSWORD, username=made["verifier"].username)
    _record(seeding, operator, {"bsc": made["bsc"], "medium": made["medium"], "viability": "91"})
    server = processes.add(WebServer(tmp_path / "web.log", redis=private_redis.url)).wait_ready()
    browser = Browser(server.url)
    browser.login(operator.username)
    path = f"/execute/{batch.number}/steps/{seeding.pk}/perform/"
    form = {"username": operator.username, "password": PASSWORD}

    # Step 2.1 needs no verification: signing it opens 2.2, whose row the test holds locked.
    lock = RowLock("ebr_stepexecution", formulation.pk)
    try:
        request = InFlight(browser, path, form)
        request.start()
        _, statement, written = _kill_worker_serving(server, lock, request)
    finally:
        lock.release()

    seeding.refresh_from_db()
    formulation.refresh_from_db()
    after_kill = {"signatures": _signatures(seeding, "performed"), "status": seeding.status,
                  "performed events": _events(Event.STEP_PERFORMED, "ebr.stepexecution", seeding.pk),
                  "next step": formulation.status}
    chain_after_kill = audit_chain_verify()

    first_retry = browser.request(path, form)  # the operator signs again: the same form
    second_retry = browser.request(path, form)  # and, impatient, once more
    seeding.refresh_from_db()
    formulation.refresh_from_db()
    signatures = _signatures(seeding, "performed")
    performed_events = _events(Event.STEP_PERFORMED, "ebr.stepexecution", seeding.pk)
    chain = audit_chain_verify()
    figures(f"step signature killed while blocked in {statement.split()[0]} after writing {', '.join(written)}; "
            f"after the kill: signatures {after_kill['signatures']}, step {after_kill['status']}, STEP_PERFORMED "
            f"{after_kill['performed events']}, next step {after_kill['next step']}; retries {first_retry}, "
            f"{second_retry}: signatures {signatures}, STEP_PERFORMED {performed_events}, step {seeding.status}, "
            f"next step {formulation.status}; audit chain {chain.entries} entries, intact {chain.intact}")

    assert "qms_signature" in written and "ebr_stepexecution" in written  # it was killed half-way
    assert after_kill == {"signatures": 0, "status": StepStatus.OPEN, "performed events": 0,
                          "next step": StepStatus.LOCKED}
    assert chain_after_kill.intact, chain_after_kill.first_break
    assert first_retry == 302 and second_retry == 422
    assert signatures == 1 and performed_events == 1
    assert seeding.status == StepStatus.DONE and formulation.status == StepStatus.OPEN
    assert chain.intact, chain.first_break


def test_out_of_specification_entry_killed_while_committing_is_recorded_once_on_retry(
        committed, private_redis, processes, tmp_path):
    made = _started_batch()
    batch, operator = made["batch"], made["operator"]
    receipt = _step(batch, "1.1")
    temperature = receipt.template.parameters.get(code="temp")
    server = processes.add(WebServer(tmp_path / "web.log", redis=private_redis.url)).wait_ready()
    browser = Browser(server.url)
    browser.login(operator.username)
    path = f"/execute/{batch.number}/steps/{receipt.pk}/values/{temperature.pk}/"
    prefix = f"p{temperature.pk}"
    key = uuid.uuid4().hex
    form = {f"{prefix}-value": "12", f"{prefix}-comment": "Bag read 12 °C at receipt, courier box lid open",
            f"{prefix}-performed_at": "", f"{prefix}-idempotency_key": key}

    def outcome() -> dict[str, int]:
        entries = list(Entry.objects.filter(idempotency_key=key))
        deviations = Deviation.objects.filter(subjects__subject_type="ebr.batch", subjects__subject_id=str(batch.pk))
        return {"entries": len(entries), "deviations": deviations.count(),
                "entry events": sum(_events(Event.ENTRY_RECORDED, "ebr.entry", entry.pk) for entry in entries),
                "deviation events": sum(_events(Event.DEVIATION_OPENED, "qms.deviation", deviation.pk)
                                        for deviation in deviations)}

    # The entry's foreign keys are checked at commit (deferred): the lock on the parameter's row
    # stops the request in COMMIT, after every row of the entry and its deviation is written.
    lock = RowLock("ebr_parameterspec", temperature.pk)
    try:
        request = InFlight(browser, path, form)
        request.start()
        _, statement, written = _kill_worker_serving(server, lock, request)
    finally:
        lock.release()

    after_kill = outcome()
    chain_after_kill = audit_chain_verify()
    retry = browser.request(path, form)  # the operator's retry: same form, same idempotency key
    after_retry = outcome()
    chain = audit_chain_verify()
    committed_unanswered = after_kill["entries"] == 1
    figures(f"OOS entry killed while blocked in {statement.split()[0]} after writing {', '.join(written)}; "
            f"after the kill: {after_kill} ({'committed, never answered' if committed_unanswered else 'rolled back'});"
            f" retry {retry}: {after_retry}; audit chain {chain.entries} entries, intact {chain.intact}")

    assert "ebr_entry" in written and "qms_deviation" in written
    assert after_kill in ({"entries": 0, "deviations": 0, "entry events": 0, "deviation events": 0},
                          {"entries": 1, "deviations": 1, "entry events": 1, "deviation events": 1})
    assert chain_after_kill.intact, chain_after_kill.first_break
    assert retry == 302
    assert after_retry == {"entries": 1, "deviations": 1, "entry events": 1, "deviation events": 1}
    assert chain.intact, chain.first_break
