"""`make run`: migrate, load the demo facility, then run web, worker, beat and outbox relay.

One Ctrl-C stops all of them; if one dies, the others are stopped too, so nothing keeps
running half-alive. Production runs the same processes under systemd or compose (deploy/).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

PYTHON = sys.executable
MANAGE = [PYTHON, "manage.py"]
ADDRESS = os.environ.get("EBR_ADDRESS", "127.0.0.1:8000")

PROCESSES: dict[str, list[str]] = {
    "web": [*MANAGE, "runserver", ADDRESS, "--noreload"],
    "worker": [PYTHON, "-m", "celery", "-A", "ebr", "worker", "--loglevel=INFO", "--concurrency=2",
               "-Q", "ebr", "-n", "worker@%h"],
    "beat": [PYTHON, "-m", "celery", "-A", "ebr", "beat", "--loglevel=INFO"],
    "relay": [*MANAGE, "outbox_relay"],
}


class ServiceUnusable(RuntimeError):
    """PostgreSQL or Redis cannot be used as configured; the message is one line saying why."""


def _shown(url: str) -> str:
    """The URL without its password, for a message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=f"{netloc}:{parts.port}" if parts.port else netloc))


def database_ready(url: str) -> None:
    """The database `url` names exists: created on the first run, as the embedded server's is,
    so that `make run` against a real server needs only a role allowed to create databases."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict

    name = str(conninfo_to_dict(url).get("dbname") or "")
    try:
        with psycopg.connect(url, dbname="postgres", autocommit=True, connect_timeout=10) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                print(f"devserver: created database {name} on {_shown(url)}", flush=True)
    except psycopg.Error as error:
        reason = " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
        raise ServiceUnusable(f"cannot use the database {_shown(url)}: {reason}") from error


def redis_ready(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=10).ping()
    except redis.RedisError as error:
        raise ServiceUnusable(f"cannot use Redis at {_shown(url)}: {error}") from error


def _prepare() -> None:
    database_ready(os.environ["DATABASE_URL"])
    redis_ready(os.environ["REDIS_URL"])
    subprocess.run([*MANAGE, "migrate", "--noinput"], check=True)
    subprocess.run([*MANAGE, "seed_demo"], check=True)


def _stop_all(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


def main() -> int:
    try:
        _prepare()
    except subprocess.CalledProcessError as error:
        print(f"devserver: set-up failed ({error.cmd[2] if len(error.cmd) > 2 else error.cmd})", file=sys.stderr)
        return 1
    except ServiceUnusable as error:
        print(f"devserver: {error}", file=sys.stderr)
        return 1
    children = {name: subprocess.Popen(command) for name, command in PROCESSES.items()}
    print(f"\n  eBR is running at http://{ADDRESS}/  (Ctrl-C stops web, worker, beat and relay)\n",
          flush=True)
    stopping = False

    def on_signal(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(f"devserver: {name} exited with {child.returncode}; stopping the rest", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        _stop_all(children)
    return 0


if __name__ == "__main__":
    sys.exit(main())
