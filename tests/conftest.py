"""Shared fixtures: personas, real broker and worker processes, committed-data helpers.

Tests run against real PostgreSQL and Redis (`make test` provides them). Most tests run in a
transaction rolled back at the end. Tests that need data other processes can see (a Celery
worker, concurrent threads) use `committed`: their rows stay in the test database, because the
audit tables are append-only and cannot be flushed; such tests create uniquely named data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.conf import settings
from django.db import connections

from qms.audit import SystemActor
from qms.roles import Role

if TYPE_CHECKING:
    from qms.models import User

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-staple"
SEED = SystemActor("system:tests")  # the actor of data a test sets up outside any user's action


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, django_db_keepdb, django_db_createdb, request):  # type: ignore[no-untyped-def]
    """pytest-django creates test databases only for tests marked django_db; tests that use only
    `committed` (real commits, worker processes) need the test database too, never the real one."""
    from django.test.utils import setup_databases, teardown_databases

    if connections["default"].settings_dict["NAME"].startswith("test_"):
        yield
        return
    with django_db_blocker.unblock():
        config = setup_databases(verbosity=request.config.option.verbose, interactive=False, aliases={"default"},
                                 keepdb=django_db_keepdb and not django_db_createdb)
    yield
    if not django_db_keepdb:
        with django_db_blocker.unblock():
            teardown_databases(config, verbosity=request.config.option.verbose)


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing():
    """Thousands of logins and signatures: hash with Argon2 at its lowest cost in tests."""
    from django.test.utils import override_settings

    with override_settings(PASSWORD_HASHERS=["tests.hashers.CheapArgon2PasswordHasher",
                                             "django.contrib.auth.hashers.Argon2PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def _security_connection_independent(request: pytest.FixtureRequest, _django_db_marker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Let the `security` alias autocommit beside the test transaction, as it does in production.

    Django's TestCase would either block that alias or wrap it in a transaction of its own;
    the point of the alias is that failed logins and refused signatures commit even when the
    surrounding transaction rolls back, so tests must see exactly that.
    """
    from django.test.testcases import _DatabaseFailure

    if request.node.get_closest_marker("django_db") is None:
        yield
        return
    security = connections["security"]
    for name in ("connect", "temporary_connection", "cursor", "chunked_cursor"):
        method = getattr(security, name)
        if isinstance(method, _DatabaseFailure):
            setattr(security, name, method.wrapped)
    if security.connection is None:
        security.connect()
    yield
    from axes.models import AccessAttempt, AccessFailureLog

    try:
        AccessAttempt.objects.all().delete()
        AccessFailureLog.objects.all().delete()
    except Exception:
        connections["security"].close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def person(role: Role | None, name: str) -> User:
    """A uniquely named account with one role (None: a logged-in account without any role)."""
    from qms.services.users import user_create

    return user_create(actor=SEED, username=unique(role.value if role else "nobody"), full_name=name,
                       password=PASSWORD, roles=[role] if role else [])


@pytest.fixture
def make_user(db):  # type: ignore[no-untyped-def]
    from qms.services.users import user_create

    def make(role: Role | None = None, *, username: str | None = None, full_name: str | None = None,
             password: str = PASSWORD, roles: list[Role] | None = None):  # type: ignore[no-untyped-def]
        chosen = roles if roles is not None else ([role] if role else [])
        name = username or unique(chosen[0].value if chosen else "user")
        return user_create(actor=SEED, username=name,
                           full_name=full_name or f"{name.title()} Person", password=password, roles=chosen)

    return make


@pytest.fixture
def operator(make_user):  # type: ignore[no-untyped-def]
    return make_user(Role.OPERATOR, full_name="Olivia Operator")


@pytest.fixture
def verifier(make_user):  # type: ignore[no-untyped-def]
    return make_user(Role.OPERATOR, full_name="Victor Verifier")


@pytest.fixture
def supervisor(make_user):  # type: ignore[no-untyped-def]
    return make_user(Role.SUPERVISOR, full_name="Sofia Supervisor")


@pytest.fixture
def qa_reviewer(make_user):  # type: ignore[no-untyped-def]
    return make_user(Role.QA_REVIEWER, full_name="Quentin Reviewer")


@pytest.fixture
def qa_approver(make_user):  # type: ignore[no-untyped-def]
    return make_user(Role.QA_APPROVER, full_name="Claire Approver")


@pytest.fixture
def auditor(make_user):  # type: ignore[no-untyped-def]
    return make_user(Role.AUDITOR, full_name="Arthur Auditor")


@pytest.fixture
def admin_user(make_user):  # type: ignore[no-untyped-def]
    return make_user(Role.ADMIN, full_name="Alice Admin")


def login(client, user, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    response = client.post("/login/", {"username": user.username, "password": password})
    assert response.status_code == 302, response.content[:500]
    return client


# --- committed data, real processes --------------------------------------------------------

@pytest.fixture
def committed(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    """Database access without a wrapping transaction: what the test writes is committed."""
    with django_db_blocker.unblock():
        # Never commit test data into a real database.
        assert connections["default"].settings_dict["NAME"].startswith("test_"), "not the test database"
        yield
        for connection in connections.all():
            connection.close()


def database_url() -> str:
    db = connections["default"].settings_dict
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"


class RedisServer:
    """A private redis-server the test may stop and start (the shared one is left alone)."""

    def __init__(self, home: Path) -> None:
        from ebr.localservices import _free_port

        self.home = home
        self.port = _free_port()
        self.pid_file = home / "redis.pid"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        from ebr.localservices import start_redis_server

        start_redis_server(self.home, self.port, self.pid_file)
        # The port opens before Redis has read its append-only file back; until then every command
        # is refused ("loading the dataset"), which a publish right after a restart would meet.
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 15
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.BusyLoadingError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        import signal

        from ebr.localservices import _pid_alive, _wait_gone

        if self.pid_file.exists():
            pid = int(self.pid_file.read_text().strip() or 0)
            if pid and _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 10)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Celery in this test session talks to a private Redis, so tests can stop it."""
    from ebr.celery import app

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    previous = (app.conf.broker_url, app.conf.result_backend)
    _celery_point_at(server.url, server.url)
    yield server
    _celery_point_at(*previous)
    server.stop()


def _celery_point_at(broker_url: str, backend_url: str) -> None:
    from ebr.celery import app

    app.conf.broker_url = broker_url
    app.conf.result_backend = backend_url
    # Drop cached connections so that the next publish uses the new URL.
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    app.__dict__.pop("backend", None)
    app._local.__dict__.pop("backend", None)


def process_stop(process: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """SIGTERM (a worker finishes its task, a relay its sweep), then SIGKILL after 20 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


class Worker:
    def __init__(self, broker_url: str, log: Path) -> None:
        env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": broker_url,
               "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE}
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "ebr", "worker", "--loglevel=INFO", "--concurrency=1",
             "--pool=prefork", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "-n", f"test-{uuid.uuid4().hex[:6]}@%h",
             "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        )

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if "ready." in self.log.read_text():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        process_stop(self.process)


@pytest.fixture
def worker(broker: RedisServer, committed, tmp_path: Path) -> Iterator[Worker]:  # type: ignore[no-untyped-def]
    """A real `celery worker` process on the private broker, using the test database."""
    running = Worker(broker.url, tmp_path / "worker.log")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


class Relay:
    """A real `outbox_relay` process: sends relay-sent work (alarm evaluation) to the broker."""

    def __init__(self, broker_url: str, log: Path) -> None:
        # DEBUG off as in production: with it on, every query the relay makes is also recorded.
        env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": broker_url, "DJANGO_DEBUG": "false"}
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "outbox_relay", "--interval", "0.5"],
            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        process_stop(self.process)


@pytest.fixture
def relay(broker: RedisServer, committed, tmp_path: Path) -> Iterator[Relay]:  # type: ignore[no-untyped-def]
    """The outbox relay on the private broker, as production runs it next to the workers."""
    running = Relay(broker.url, tmp_path / "relay.log")
    try:
        yield running
    finally:
        running.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop (and DJANGO_ALLOW_ASYNC_UNSAFE) for
    the rest of the session, which would break later tests that run asyncio themselves (PDF signing)."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


def while_held(hold: Callable[[], object], attempt: Callable[[], object], *, waits: float = 1.0) -> object:
    """Run `hold` in a transaction on one thread and keep it open while `attempt` runs on another
    (each thread on its own database connection, committed data); `hold` commits once `attempt` has
    had `waits` seconds to block on its locks. Returns what `attempt` returned or raised."""
    import threading

    from django.db import connection, transaction

    held, finish = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def holder() -> None:
        try:
            with transaction.atomic():
                hold()
                held.set()
                finish.wait(20)
        finally:
            connection.close()

    def attempter() -> None:
        try:
            outcome["result"] = attempt()
        except Exception as error:  # the caller asserts on what it was
            outcome["result"] = error
        finally:
            connection.close()

    first = threading.Thread(target=holder)
    first.start()
    assert held.wait(20), "the holding transaction did not start"
    second = threading.Thread(target=attempter)
    second.start()
    second.join(waits)
    finish.set()
    first.join(20)
    second.join(20)
    assert "result" in outcome, "the attempt did not finish"
    return outcome["result"]
