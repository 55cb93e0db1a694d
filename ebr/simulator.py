"""A simulated bioreactor that talks to the instrument API exactly as a real one would.

Pure Python (no Django): the kinetics of a CAR-T expansion, a paced simulated clock, the HTTP
client with retries, and the sequence state that survives a restart. The `simulate_bioreactor`
command wires it to a batch.

Kinetics (rocking-motion bioreactor, activated T cells, days 0 to 9):
- viable cell density: logistic growth from ~0.5 to ~5 x 10^6/mL over 7 to 9 days;
- viability: ~95 %, a dip after activation, a slow decline once nutrients run low;
- glucose falls with the integral of viable cells, lactate rises with the glucose consumed,
  glutamine falls and ammonia rises likewise;
- pH drifts down with lactate; DO falls with cell density, recovered by higher rocking rates
  (agitation rises with density); temperature ~37 °C; CO2 ~5 %.
Online probes (ph, do, temp, agitation, co2) report every interval; at-line values (vcd,
viability, glucose, lactate, glutamine, ammonia) every hour.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ONLINE = ("ph", "do", "temp", "agitation", "co2")
AT_LINE = ("vcd", "viability", "glucose", "lactate", "glutamine", "ammonia")
UNITS = {"ph": "[pH]", "do": "%", "temp": "Cel", "agitation": "/min", "co2": "%", "vcd": "10*6/mL",
         "viability": "%", "glucose": "g/L", "lactate": "mmol/L", "glutamine": "mmol/L", "ammonia": "mmol/L"}
DECIMALS = {"ph": 3, "do": 1, "temp": 2, "agitation": 1, "co2": 2, "vcd": 3, "viability": 1, "glucose": 2,
            "lactate": 2, "glutamine": 2, "ammonia": 2}
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class SimulatorError(Exception):
    """The server refused the data (4xx) or could not be reached after every retry."""


class OptionError(ValueError, argparse.ArgumentTypeError):
    """A malformed option value; argparse shows its message (a plain ValueError it replaces with its own)."""


def duration(text: str) -> timedelta:
    """"90s", "30m", "12h", "1.5d" as a timedelta."""
    match = DURATION.fullmatch(text.strip())
    if match is None:
        raise OptionError(f"{text!r} is not a duration like 30m, 12h or 2d")
    return timedelta(seconds=float(match.group(1)) * SECONDS[match.group(2)])


@dataclass(frozen=True)
class Excursion:
    """`ph:6.6@12h` (30 minutes) or `ph:6.6@12h+45m`: the parameter reads `value` from `at` on."""

    parameter: str
    value: float
    at: timedelta
    length: timedelta = timedelta(minutes=30)

    @classmethod
    def parse(cls, text: str) -> Excursion:
        match = re.fullmatch(r"([a-z0-9_]+):(-?\d+(?:\.\d+)?)@([0-9.]+[smhd])(?:\+([0-9.]+[smhd]))?", text.strip())
        if match is None:
            raise OptionError(f"{text!r}: expected PARAMETER:VALUE@TIME[+DURATION], e.g. ph:6.6@12h+30m")
        if match.group(1) not in UNITS:
            raise OptionError(f"{text!r}: unknown parameter {match.group(1)!r}; one of {', '.join(sorted(UNITS))}")
        length = duration(match.group(4)) if match.group(4) else timedelta(minutes=30)
        return cls(match.group(1), float(match.group(2)), duration(match.group(3)), length)

    def covers(self, elapsed: timedelta) -> bool:
        return self.at <= elapsed < self.at + self.length


@dataclass(frozen=True)
class Gap:
    """`30m@20h`: the bioreactor sends nothing for 30 minutes from 20 hours on."""

    length: timedelta
    at: timedelta

    @classmethod
    def parse(cls, text: str) -> Gap:
        length, _, at = text.partition("@")
        if not at:
            raise OptionError(f"{text!r}: expected DURATION@TIME, e.g. 30m@20h")
        return cls(duration(length), duration(at))

    def covers(self, elapsed: timedelta) -> bool:
        return self.at <= elapsed < self.at + self.length


class BioreactorModel:
    """Deterministic (seeded) kinetics; `values(days)` gives every parameter at culture time `days`."""

    X0, K, RATE = 0.5, 5.5, math.log(100) / 8  # 10^6/mL; reaches ~5.0 on day 8
    GLUCOSE0, GLUTAMINE0 = 4.0, 2.0  # g/L, mmol/L

    def __init__(self, seed: int = 1) -> None:
        self.random = random.Random(seed)  # noqa: S311  (measurement noise, not a secret)

    def vcd(self, days: float) -> float:
        return self.K / (1 + (self.K - self.X0) / self.X0 * math.exp(-self.RATE * days))

    def cell_days(self, days: float) -> float:
        """Integral of the viable cell density from day 0 (closed form of the logistic)."""
        a = (self.K - self.X0) / self.X0
        return self.K / self.RATE * math.log((math.exp(self.RATE * days) + a) / (1 + a))

    def values(self, days: float) -> dict[str, float]:
        noise = self.random.gauss
        density = self.vcd(days)
        glucose = max(0.3, self.GLUCOSE0 - 0.12 * self.cell_days(days))
        lactate = 1.0 + 1.2 * (self.GLUCOSE0 - glucose) / 0.18
        fraction = density / self.K
        agitation = 10 + 10 * fraction
        return {
            "vcd": density * (1 + noise(0, 0.02)),
            "viability": min(99.0, 95 - 3 * math.exp(-((days - 1.5) ** 2) / 0.5) - 2 * max(0.0, days - 7)
                             - 4 * max(0.0, 1.0 - glucose) + noise(0, 0.4)),
            "glucose": glucose + noise(0, 0.03),
            "lactate": lactate + noise(0, 0.15),
            "glutamine": max(0.05, self.GLUTAMINE0 - 0.035 * self.cell_days(days)) + noise(0, 0.02),
            "ammonia": 0.2 + 0.05 * self.cell_days(days) + noise(0, 0.02),
            "ph": 7.35 - 0.018 * lactate + noise(0, 0.01),
            "do": 55 - 15 * fraction + 1.5 * (agitation - 10) + noise(0, 0.8),
            "temp": 37.0 + 0.05 * math.sin(days * 2 * math.pi * 6) + noise(0, 0.03),
            "agitation": agitation + noise(0, 0.1),
            "co2": 5.0 + noise(0, 0.04),
        }


@dataclass
class Plan:
    """What to simulate: from `start`, `hours` of culture, one online reading per `interval`."""

    start: datetime
    hours: float
    interval: timedelta = timedelta(seconds=60)
    sample_every: timedelta = timedelta(hours=1)
    excursions: list[Excursion] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    resume_from: datetime | None = None  # a restart: what was posted before this moment is not sent again
    # Instrument time per culture time: 1 normally. Below 1 when the bioreactor was assigned too
    # recently to hold the culture in the past: the culture is compressed into the time there is.
    time_scale: float = 1.0

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=self.hours) * self.time_scale

    @property
    def first(self) -> datetime:
        return self.resume_from or self.start


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ticks(plan: Plan, model: BioreactorModel) -> Iterator[tuple[datetime, list[tuple[str, float]]]]:
    """(time, [(parameter, value)]) for every tick of the plan, gaps left out, excursions applied."""
    sample_ticks = max(1, round(plan.sample_every / plan.interval))
    tick, moment, culture = 0, plan.start, timedelta(hours=plan.hours)
    while tick * plan.interval < culture:
        elapsed = tick * plan.interval  # culture time: the kinetics, excursions and gaps run on it
        values = model.values(elapsed.total_seconds() / 86400)  # drawn even when skipped: same noise on resume
        names = ONLINE + (AT_LINE if tick % sample_ticks == 0 else ())
        for excursion in plan.excursions:
            if excursion.covers(elapsed):
                values[excursion.parameter] = excursion.value + model.random.gauss(0, 0.005)
                if excursion.parameter not in names:
                    names = (*names, excursion.parameter)
        skipped = plan.resume_from is not None and moment < plan.resume_from
        if not skipped and not any(gap.covers(elapsed) for gap in plan.gaps):
            yield moment, [(name, round(values[name], DECIMALS[name])) for name in names]
        tick += 1
        moment = plan.start + tick * plan.interval * plan.time_scale


class Clock:
    """Simulated time runs `speed` times faster than real time, but never ahead of the real now:
    an instrument cannot report the future. Once it has caught up it runs in real time."""

    def __init__(self, start: datetime, speed: float, now: Callable[[], datetime],
                 sleep: Callable[[float], None]) -> None:
        self.start, self.speed, self.now, self.sleep = start, speed, now, sleep
        self.real_start = now()

    def simulated(self) -> datetime:
        return min(self.start + (self.now() - self.real_start) * self.speed, self.now())

    def due_in(self, moment: datetime) -> float:
        """Real seconds until `moment` may be reported."""
        current = self.now()
        due = self.real_start + (moment - self.start) / self.speed
        return max((due - current).total_seconds(), (moment - current).total_seconds())

    def wait_until(self, moment: datetime) -> None:
        due = self.real_start + (moment - self.start) / self.speed
        while True:
            current = self.now()
            wait = max((due - current).total_seconds(), (moment - current).total_seconds())
            if wait <= 0 or (wait < 0.005 and moment <= current):
                return
            self.sleep(min(wait, 1.0))


@dataclass
class SequenceState:
    """Next seq (and the token of a self-registered instrument), kept on disk between runs."""

    path: Path
    next_seq: int
    last_ts: str | None = None
    token: str | None = None
    batch: str | None = None
    culture_start: str | None = None
    time_scale: float = 1.0

    @classmethod
    def load(cls, path: Path) -> SequenceState:
        if path.exists():
            data = json.loads(path.read_text())
            return cls(path, int(data["next_seq"]), data.get("last_ts"), data.get("token"), data.get("batch"),
                       data.get("culture_start"), float(data.get("time_scale", 1.0)))
        # No state: start from the clock in milliseconds, always above any earlier run's seqs.
        return cls(path, int(time.time() * 1000))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"next_seq": self.next_seq, "last_ts": self.last_ts, "token": self.token,
                                         "batch": self.batch, "culture_start": self.culture_start,
                                         "time_scale": self.time_scale}))
        os.chmod(temporary, 0o600)
        temporary.replace(self.path)


class ApiClient:
    """POST /api/v1/readings with retries: network errors, 5xx and 429 back off and try again
    with the same body (same seqs, so a post that did arrive is counted as duplicates)."""

    def __init__(self, url: str, token: str, *, max_retries: int = 8, timeout: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] = print) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r}: the server URL must start with http:// or https://")
        self.endpoint = url.rstrip("/") + "/api/v1/readings"
        self.token, self.max_retries, self.timeout, self.sleep, self.log = token, max_retries, timeout, sleep, log

    @staticmethod
    def unreachable(url: str, *, attempts: int = 3, timeout: float = 5.0,
                    sleep: Callable[[float], None] = time.sleep) -> str | None:
        """Why the server at `url` cannot be reached, or None when it answers at all (any HTTP status)."""
        if not url.startswith(("http://", "https://")):
            return "the server URL must start with http:// or https://"
        reason = ""
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(url.rstrip("/") + "/api/v1/readings", timeout=timeout):  # noqa: S310
                    return None
            except urllib.error.HTTPError:
                return None  # 401 or 405: a server that answers
            except (urllib.error.URLError, OSError, TimeoutError) as error:
                reason = str(getattr(error, "reason", error))
            if attempt + 1 < attempts:
                sleep(1.0)
        return reason

    def _send(self, body: bytes) -> tuple[int, dict[str, Any], str | None]:
        request = urllib.request.Request(self.endpoint, data=body, method="POST", headers={  # noqa: S310
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
            "User-Agent": "ebr-simulate-bioreactor/1"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (http(s) only)
                return response.status, json.loads(response.read() or b"{}"), None
        except urllib.error.HTTPError as error:
            text = error.read()
            try:
                answer = json.loads(text or b"{}")
            except ValueError:
                answer = {"errors": [{"message": text[:200].decode(errors="replace")}]}
            return error.code, answer, error.headers.get("Retry-After")

    def post(self, body: bytes) -> dict[str, Any]:
        delay = 0.5
        for attempt in range(self.max_retries + 1):
            try:
                status, answer, retry_after = self._send(body)
            except (urllib.error.URLError, OSError, TimeoutError) as error:
                status, answer, retry_after = 0, {"errors": [{"message": str(error)}]}, None
            if status == 201:
                return answer
            if status not in (0, 429) and status < 500:
                errors = answer.get("errors", [answer])
                shown = "; ".join(str(error.get("message", error)) for error in errors[:3])
                more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
                raise SimulatorError(f"{status}: {shown}{more}")
            if attempt == self.max_retries:
                raise SimulatorError(f"gave up after {attempt + 1} attempts: {status or 'network error'}")
            wait = float(retry_after) if retry_after and retry_after.isdigit() else delay
            self.log(f"retry in {wait:.1f}s after {status or 'network error'}: {answer.get('errors', '')}")
            self.sleep(wait)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")


@dataclass
class Totals:
    posts: int = 0
    readings: int = 0
    accepted: int = 0
    duplicates: int = 0
    alarms: dict[int, dict[str, Any]] = field(default_factory=dict)


def run(*, plan: Plan, client: ApiClient, state: SequenceState, batch: str | None, speed: float,
        batch_size: int = 1000, flush_every: float = 1.0, seed: int = 1,
        now: Callable[[], datetime] = lambda: datetime.now(UTC), sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = print) -> Totals:
    """Post the plan's readings through the API in batches, pacing the simulated clock."""
    clock, totals = Clock(plan.first, speed, now, sleep), Totals()
    buffer: list[dict[str, Any]] = []
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal buffer, last_flush
        if not buffer:
            return
        payload: dict[str, Any] = {"readings": buffer}
        if batch:
            payload["batch"] = batch
        answer = client.post(json.dumps(payload, separators=(",", ":")).encode())
        totals.posts += 1
        totals.readings += len(buffer)
        totals.accepted += answer.get("accepted", 0)
        totals.duplicates += answer.get("duplicates", 0)
        for alarm in answer.get("alarms", []):
            totals.alarms[alarm["id"]] = alarm
        state.next_seq, state.last_ts = buffer[-1]["seq"] + 1, buffer[-1]["ts"]
        state.save()
        log(f"post {totals.posts}: {len(buffer)} readings up to {state.last_ts}, accepted {answer.get('accepted')}, "
            f"duplicates {answer.get('duplicates')}, open alarms {len(answer.get('alarms', []))}")
        buffer, last_flush = [], time.monotonic()

    seq = state.next_seq
    for moment, values in ticks(plan, BioreactorModel(seed)):
        if clock.due_in(moment) > flush_every / 2:
            flush()  # caught up with real time: send what is buffered before waiting
        clock.wait_until(moment)
        if len(buffer) + len(values) > batch_size:
            flush()  # never more than batch_size readings in a request
        stamp = rfc3339(moment)
        for name, value in values:
            buffer.append({"seq": seq, "ts": stamp, "parameter": name, "value": value, "unit": UNITS[name]})
            seq += 1
        if len(buffer) >= batch_size or time.monotonic() - last_flush >= flush_every:
            flush()
    flush()
    return totals
