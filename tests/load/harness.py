"""A load run against the production stack: gunicorn (deploy/gunicorn.conf.py) + Celery + relay.

Who does what (issue #9, "Load"):
- operators (30): each logs in and executes their own patient batch step by step on the tablet
  pages, like a browser would: GET the step page, POST the value (302 back), GET the page,
  POST the "performed" signature with the password (and the username at the first signing);
  between actions they think for OPERATOR_THINK seconds (a person in gloves, not a script);
- QA users (5): log in and browse the QA dashboard, batch list and pages, the audit trail,
  deviations, the review queue, thinking QA_THINK seconds between pages;
- bioreactors (20): each posts its five process parameters to POST /api/v1/readings every
  5 s with its own token, attributed to one of the running batches.

Every request is timed from the client; the result table gives p50/p95/p99 per kind of
request, the error count (anything but the expected status), and the growth of the database.
After the run the harness checks that nothing was lost or doubled: every value the server
accepted is stored once, every signed step is performed, every reading sent is stored once.
"""

from __future__ import annotations

import random
import re
import statistics
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal as D
from typing import Any

import orjson
import requests
from django.db import connection
from django.utils import timezone

from ebr.models import Batch, Entry, MasterRecordVersion, Reading, StepExecution
from ebr.services import master_records as master_services
from ebr.services.instruments import instrument_register
from qms.models import User
from qms.roles import Role
from tests.conftest import PASSWORD
from tests.ebr.conftest import train
from tests.ebr.process_builders import SEED, People, bioreactor, people, person, running_batch, stamp, unique

OPERATOR_THINK = (4.0, 12.0)
QA_THINK = (2.0, 6.0)
POST_EVERY = 5.0
BIOREACTOR_PARAMETERS = (("ph", "[pH]", 7.1), ("do", "%", 45.0), ("temp", "Cel", 37.0),
                         ("vcd", "10*6/mL", 2.4), ("glucose", "g/L", 3.1))
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
ENTRY_FORM = re.compile(r'action="(/execute/[^"]+/steps/(\d+)/values/(\d+)/)"')
PERFORM_FORM = re.compile(r'action="(/execute/[^"]+/steps/(\d+)/perform/)"')
USERNAME_FIELD = re.compile(r'<input type="text" name="username"')


@dataclass
class Site:
    who: People
    version: MasterRecordVersion
    operators: list[User]
    qa_users: list[User]
    batches: list[Batch]
    tokens: list[str]
    bioreactor_batches: list[str]


def site_build(*, operators: int, qa_users: int, bioreactors: int, steps: int) -> Site:
    """Users, an effective master record of `steps` one-value steps, one running batch per operator,
    and `bioreactors` instruments each on the equipment of one of those batches."""
    who = people()
    version = _version(who, steps)
    crew = [person(Role.OPERATOR, f"Load Operator {n:02d}") for n in range(operators)]
    for operator in crew:
        train(operator, version, who.qa_approver, who.supervisor)
    qa = [person(Role.QA_REVIEWER if n % 2 else Role.QA_APPROVER, f"Load QA {n}") for n in range(qa_users)]
    batches, tokens, attributed = [], [], []
    for n in range(operators):
        equipment = bioreactor() if n < bioreactors else None
        batch = running_batch(who, version, equipment)
        batches.append(batch)
        if equipment is not None:
            tokens.append(instrument_register(actor=SEED, name=unique("load-br"), equipment=equipment).token)
            attributed.append(batch.number)
    return Site(who, version, crew, qa, batches, tokens, attributed)


def _version(who: People, steps: int) -> MasterRecordVersion:
    product = master_services.product_create(actor=who.supervisor, code=unique("P-LOAD"), name="Load CAR-T")
    version = master_services.master_record_create(actor=who.supervisor, product=product, code=unique("MBR-LOAD"),
                                                   title="Load test process")
    stage = master_services.stage_add(actor=who.supervisor, version=version, name="Expansion")
    for n in range(1, steps + 1):
        master_services.step_add(
            actor=who.supervisor, stage=stage, code=f"1.{n}", title=f"Daily count {n}",
            instructions="Sample 1 mL and count on the cell counter.",
            parameters=[{"code": "vcd", "label": "Viable cell density", "kind": "number", "unit": "10*6/mL",
                         "lower_limit": D("0.1"), "upper_limit": D("20")}])
    for action, actor in ((master_services.version_submit, who.supervisor),
                          (master_services.version_review, who.qa_reviewer),
                          (master_services.version_approve, who.qa_approver)):
        action(actor=actor, version=version, password=PASSWORD, username=actor.username)
    return master_services.version_make_effective(actor=who.qa_approver, version=version)


# --- measurement ---------------------------------------------------------------------------------

@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    entries_accepted: int = 0
    steps_signed: int = 0
    readings_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, kind: str, session: requests.Session, method: str, url: str, expected: tuple[int, ...],
              **options: Any) -> requests.Response | None:
        started = time.perf_counter()
        try:
            response = session.request(method, url, timeout=30, allow_redirects=False, **options)
        except requests.RequestException as error:
            self.error(f"{kind}: {type(error).__name__}: {error}")
            return None
        elapsed = time.perf_counter() - started
        with self.lock:
            self.latencies[kind].append(elapsed)
        if response.status_code not in expected:
            self.error(f"{kind}: HTTP {response.status_code} {response.text[:200]!r}")
            return None
        return response

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def count(self, attribute: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, attribute, getattr(self, attribute) + n)


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def table(results: Results, seconds: float, size_before: int, size_after: int) -> str:
    lines = [f"{'request':<34}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"]
    for kind in sorted(results.latencies):
        values = results.latencies[kind]
        lines.append(f"{kind:<34}{len(values):>7}{percentile(values, 50) * 1000:>9.0f}"
                     f"{percentile(values, 95) * 1000:>9.0f}{percentile(values, 99) * 1000:>9.0f}"
                     f"{max(values) * 1000:>9.0f}")
    total = sum(len(v) for v in results.latencies.values())
    lines.append(f"{total:,} requests in {seconds:.0f} s; errors {len(results.errors)}; values accepted "
                 f"{results.entries_accepted}, steps signed {results.steps_signed}, readings sent "
                 f"{results.readings_sent:,}")
    lines.append(f"database {size_before / 2**20:.1f} MB → {size_after / 2**20:.1f} MB "
                 f"(+{(size_after - size_before) / 2**20:.1f} MB)")
    return "\n".join(lines)


def database_size() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return int(cursor.fetchone()[0])


# --- the simulated people and machines -------------------------------------------------------------

def _session() -> requests.Session:
    session = requests.Session()
    # One connection per request: gunicorn closes idle keep-alive connections after 5 s, and a
    # client reusing one just as it closes sees a reset that a browser would silently retry.
    session.headers["Connection"] = "close"
    return session


def _login(base: str, user: User, results: Results) -> requests.Session | None:
    session = _session()
    page = results.timed("login page", session, "GET", f"{base}/login/", (200,))
    if page is None:
        return None
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    done = results.timed("login", session, "POST", f"{base}/login/", (302,), headers={"Referer": f"{base}/login/"},
                         data={"csrfmiddlewaretoken": token, "username": user.username, "password": PASSWORD})
    return session if done is not None else None


def operator_run(base: str, user: User, batch: str, until: float, results: Results, rng: random.Random) -> None:
    time.sleep(rng.uniform(0, OPERATOR_THINK[1]))  # a shift does not log in within the same millisecond
    session = _login(base, user, results)
    if session is None:
        return
    page_url = f"{base}/execute/{batch}/"
    while time.monotonic() < until:
        page = results.timed("operator step page", session, "GET", page_url, (200,))
        if page is None:
            return
        csrf = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        entry = ENTRY_FORM.search(page.text)
        if entry and 'name="entry"' not in page.text:
            action, _, parameter = entry.groups()
            key = re.search(rf'name="p{parameter}-idempotency_key" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            data = {"csrfmiddlewaretoken": csrf, f"p{parameter}-value": f"{rng.uniform(1, 9):.2f}",
                    f"p{parameter}-comment": "", f"p{parameter}-idempotency_key": key}
            time.sleep(rng.uniform(*OPERATOR_THINK))
            if results.timed("operator value submit", session, "POST", f"{base}{action}", (302,), data=data,
                             headers={"Referer": page_url}) is None:
                return
            results.count("entries_accepted")
            continue
        perform = PERFORM_FORM.search(page.text)
        if perform is None:
            return  # the batch is finished: nothing left to execute
        data = {"csrfmiddlewaretoken": csrf, "password": PASSWORD}
        if USERNAME_FIELD.search(page.text):
            data["username"] = user.username
        time.sleep(rng.uniform(*OPERATOR_THINK))
        if results.timed("operator step sign (performed)", session, "POST", f"{base}{perform.group(1)}", (302,),
                         data=data, headers={"Referer": page_url}) is None:
            return
        results.count("steps_signed")


def qa_run(base: str, user: User, batches: list[str], until: float, results: Results, rng: random.Random) -> None:
    time.sleep(rng.uniform(0, QA_THINK[1]))
    session = _login(base, user, results)
    if session is None:
        return
    pages = [("QA dashboard", "/qms/dashboard/"), ("batch list", "/batches/"), ("deviation list", "/qms/deviations/"),
             ("review queue", "/review/"), ("audit trail", "/audit/")]
    while time.monotonic() < until:
        label, path = rng.choice([*pages, ("batch page", None)])
        path = path or f"/batches/{rng.choice(batches)}/"
        if results.timed(f"QA {label}", session, "GET", f"{base}{path}", (200,)) is None:
            return
        time.sleep(rng.uniform(*QA_THINK))


def bioreactor_run(base: str, token: str, until: float, results: Results, rng: random.Random) -> None:
    session = _session()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    seq = 0
    time.sleep(rng.uniform(0, POST_EVERY))  # instruments are not synchronised
    while time.monotonic() < until:
        moment = timezone.now() - timedelta(seconds=1)
        readings = []
        for code, unit, base_value in BIOREACTOR_PARAMETERS:
            seq += 1
            readings.append({"seq": seq, "ts": stamp(moment), "parameter": code,
                             "value": round(base_value * rng.uniform(0.99, 1.01), 3), "unit": unit})
        body = orjson.dumps({"readings": readings})
        if results.timed("instrument POST /api/v1/readings", session, "POST", f"{base}/api/v1/readings", (201,),
                         data=body, headers=headers) is None:
            return
        results.count("readings_sent", len(readings))
        time.sleep(POST_EVERY)


def load_run(base: str, site: Site, seconds: float, seed: int = 20261127) -> Results:
    results = Results()
    until = time.monotonic() + seconds
    threads = []
    for n, (operator, batch) in enumerate(zip(site.operators, site.batches, strict=True)):
        threads.append(threading.Thread(target=operator_run, args=(base, operator, batch.number, until, results,
                                                                    random.Random(seed + n))))
    numbers = [batch.number for batch in site.batches]
    for n, user in enumerate(site.qa_users):
        threads.append(threading.Thread(target=qa_run, args=(base, user, numbers, until, results,
                                                              random.Random(seed + 100 + n))))
    for n, token in enumerate(site.tokens):
        threads.append(threading.Thread(target=bioreactor_run, args=(base, token, until, results,
                                                                      random.Random(seed + 200 + n))))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@dataclass
class LoadReport:
    site: Site
    results: Results
    text: str


def load_measured(broker_url: str, log: Any, seconds: float, *, steps: int) -> LoadReport:
    """Build the site, run the production web stack (gunicorn, 2 workers) on it for `seconds`
    with 30 operators, 5 QA users and 20 bioreactors, and return the figures as a table. A Celery
    worker and the relay must be running (the `worker` and `relay` fixtures)."""
    from tests.ebr.process_builders import LiveServer

    site = site_build(operators=30, qa_users=5, bioreactors=20, steps=steps)
    server = LiveServer(log, broker_url=broker_url, gunicorn_workers=2).wait_ready()
    size_before = database_size()
    try:
        started = time.monotonic()
        results = load_run(server.url, site, seconds)
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    return LoadReport(site, results, table(results, elapsed, size_before, database_size()))


def nothing_lost_or_doubled(site: Site, results: Results) -> list[str]:
    """What the database holds against what the clients were told was accepted."""
    problems = []
    batch_ids = [batch.pk for batch in site.batches]
    entries = Entry.objects.filter(step__batch_id__in=batch_ids).count()
    if entries != results.entries_accepted:
        problems.append(f"values accepted {results.entries_accepted}, stored {entries}")
    performed = StepExecution.objects.filter(batch_id__in=batch_ids, performed_at__isnull=False).count()
    if performed != results.steps_signed:
        problems.append(f"steps signed {results.steps_signed}, performed in the database {performed}")
    readings = Reading.objects.filter(batch__number__in=site.bioreactor_batches).count()
    if readings != results.readings_sent:
        problems.append(f"readings sent {results.readings_sent}, stored {readings}")
    return problems
