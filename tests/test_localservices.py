"""ebr/localservices.py: commands that share the embedded servers do not stop them under each other.

Run with real processes and a real redis-server in a private EBR_LOCAL_DIR; the database side is
left out (DATABASE_URL set), as the lease rule is the same for both servers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ebr.localservices import _pid_alive

ROOT = Path(__file__).resolve().parent.parent
# The command each exec runs: say which Redis it got, wait to be told to go on, then use it.
CHILD = """
import os, pathlib, sys, time, redis
here = pathlib.Path(sys.argv[1])
(here / "url").write_text(os.environ["REDIS_URL"])
while not (here / "go").exists():
    time.sleep(0.05)
try:
    redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=2).ping()
    (here / "result").write_text("ping ok")
except Exception as error:
    (here / "result").write_text(f"failed: {error}")
"""


def _wait_for(path: Path, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.05)
    time.sleep(0.05)
    return path.read_text()


class Command:
    """`python -m ebr.localservices exec -- python CHILD` in its own directory."""

    def __init__(self, local: Path, here: Path) -> None:
        here.mkdir()
        self.here = here
        env = {**os.environ, "EBR_LOCAL_DIR": str(local), "DATABASE_URL": "postgres://unused@127.0.0.1:1/unused"}
        env.pop("REDIS_URL", None)
        self.process = subprocess.Popen([sys.executable, "-m", "ebr.localservices", "exec", "--", sys.executable, "-c",
                                         CHILD, str(here)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)

    @property
    def url(self) -> str:
        return _wait_for(self.here / "url")

    def finish(self) -> str:
        (self.here / "go").touch()
        assert self.process.wait(timeout=60) == 0, self.process.stderr.read() if self.process.stderr else ""
        return (self.here / "result").read_text()


@pytest.fixture
def local(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield tmp_path / "local"
    # Whatever a failed test left waiting is told to go on, then the server it started is stopped.
    for go in tmp_path.glob("*/url"):
        go.with_name("go").touch()
    time.sleep(0.5)
    pid_file = tmp_path / "local" / "redis" / "redis.pid"
    if pid_file.exists() and (pid := int(pid_file.read_text().strip() or 0)) and _pid_alive(pid):
        os.kill(pid, 9)


def _redis_pid(local: Path) -> int:
    return int((local / "redis" / "redis.pid").read_text().strip())


def test_a_command_that_ends_first_leaves_the_server_to_one_still_using_it(local: Path, tmp_path: Path) -> None:
    first = Command(local, tmp_path / "first")
    url = first.url  # the first command started the server
    pid = _redis_pid(local)
    second = Command(local, tmp_path / "second")
    assert second.url == url  # and the second uses the same one

    assert first.finish() == "ping ok"
    assert _pid_alive(pid), "the first command out stopped the server the second still uses"
    assert second.finish() == "ping ok"

    deadline = time.monotonic() + 15
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pid_alive(pid), "the last command out leaves the server it started running"
    assert not list((local / "leases").iterdir())


def test_a_server_kept_by_start_outlives_every_command(local: Path, tmp_path: Path) -> None:
    env = {**os.environ, "EBR_LOCAL_DIR": str(local), "DATABASE_URL": "postgres://unused@127.0.0.1:1/unused"}
    env.pop("REDIS_URL", None)
    command = Command(local, tmp_path / "command")
    command.url  # noqa: B018 (started for the command)
    pid = _redis_pid(local)
    # `start` while the command runs: the server stays up when the command ends.
    # (What `python -m ebr.localservices start` does for each server; that command also starts PostgreSQL.)
    started = subprocess.run([sys.executable, "-c", "from ebr.localservices import EmbeddedRedis, service_keep; "
                              "service_keep(EmbeddedRedis())"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    assert command.finish() == "ping ok"
    time.sleep(0.5)
    assert _pid_alive(pid)


def test_a_lease_left_by_a_killed_command_does_not_keep_the_server_forever(local: Path, tmp_path: Path) -> None:
    killed = Command(local, tmp_path / "killed")
    killed.url  # noqa: B018
    pid = _redis_pid(local)
    killed.process.kill()  # no clean-up: its lease stays behind
    killed.process.wait(timeout=10)
    (killed.here / "go").touch()  # its orphaned child finishes on its own
    assert _pid_alive(pid)
    assert len(list((local / "leases").iterdir())) == 1

    later = Command(local, tmp_path / "later")
    assert later.url == f"redis://127.0.0.1:{(local / 'redis' / 'port').read_text()}/0"
    assert later.finish() == "ping ok"
    deadline = time.monotonic() + 15
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pid_alive(pid)
    assert not list((local / "leases").iterdir())
