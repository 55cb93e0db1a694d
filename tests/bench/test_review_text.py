"""Throughput of `manage.py review_text`: 20,000 free-text entries of 10-40 words, on one core.

The whole command is timed from the outside, start-up included (Django set-up, spaCy import,
building the rules, loading the classifier), pinned to one core with `taskset -c 0` when it is
available. Target: at least 2,000 entries a second of wall-clock time. The command's own CPU time
is printed too: on a machine shared with other work, it is the fairer measure of one core. The
keyword baseline (`--baseline`) runs on the same input through the same command, and both rates
are printed side by side.

Entries are made by a seeded generator: batch-record comments in the operators' style, most of
them routine (counts, times, transfers, "no growth", "label verified"), about one in six with
something for QA. The command needs no database rows and opens no connection.
Set BENCH_REVIEW_N to change the number of entries.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
N = int(os.environ.get("BENCH_REVIEW_N", "20000"))
TARGET_PER_SECOND = 2000

ROUTINE = [
    "cells counted {vcd}e6 cells/mL viab {viab}%", "media change done at {time}",
    "bag {n} transferred to incubator {inc}",
    "sample taken for QC sterility and endotoxin", "step {step} completed as per MBR", "no growth observed on plates",
    "label verified, matches COI", "harvest started {time} volume {vol} mL", "washed twice and resuspended in {vol} mL",
    "feed added {vol}mL at {time}", "BSC cleaned before and after use", "pH {ph} within range",
    "CRF run started {time} with {n} bags", "beads removed and counted", "signed and verified by second operator",
    "viability {viab}% (limit ≥70%)", "temperature {temp}°C in incubator", "handed over to night shift at {time}",
    "transferred to LN2 dewar position R{n}-B{n}", "lot {lot} added {vol} mL", "no leaks, bag intact after thaw",
    "alarm test passed", "courier on time with logger", "all reagents within expiry",
]
EVENTS = [
    "glove torn during transfer in BSC, changed gloves", "flask {n} turbid on day {n}", "viab {low}% (limit ≥70%)",
    "centrifuge error E-12 run aborted", "expired reagent used lot {lot}", "step {step} skipped",
    "entered later from notes",
    "label does not match patient ID PT-0{n}42", "incubator CO2 alarm at {time}", "verification not performed",
    "possible leak at sample port", "previous batch had mycoplasma in this suite", "hold time exceeded by {vol} min",
]


def make_entries(n: int, seed: int = 11) -> list[dict[str, str]]:
    rng = random.Random(seed)

    def fill(template: str) -> str:
        return template.format(
            vcd=rng.choice(["1.8", "2.4", "7.2"]), viab=rng.randint(80, 97), n=rng.randint(1, 6),
            time=f"{rng.randint(7, 22)}:{rng.randint(10, 59)}", inc=rng.randint(1, 4), step=rng.randint(2, 30),
            vol=rng.choice([5, 10, 50, 120]), ph=rng.choice(["7.1", "7.2", "7.3"]), temp=rng.choice(["36.9", "37.0"]),
            lot=f"LV{rng.randint(19, 24)}-0{rng.randint(100, 999)}", low=rng.randint(40, 65))

    entries = []
    for i in range(n):
        target = rng.randint(10, 40)
        parts: list[str] = []
        words = 0
        with_event = rng.random() < 0.17
        while words < target:
            template = rng.choice(EVENTS) if with_event and not parts else rng.choice(ROUTINE)
            part = fill(template)
            parts.append(part)
            words += len(part.split())
        text = ". ".join(parts)
        entries.append({"id": f"b{i}", "text": " ".join(text.split()[:target])})
    return entries


def _run(args: list[str], stdin: Path, stdout: Path) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of the command) for one run of review_text."""
    env = {**os.environ}
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ebr_nlp")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/11")
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with stdin.open("rb") as source, stdout.open("wb") as sink:
        subprocess.run([*pin, sys.executable, "manage.py", "review_text", *args], cwd=ROOT, env=env, stdin=source,
                       stdout=sink, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_review_text_throughput(tmp_path: Path) -> None:
    source = tmp_path / "entries.jsonl"
    source.write_text("".join(json.dumps(entry) + "\n" for entry in make_entries(N)))
    pipeline_out, baseline_out = tmp_path / "pipeline.jsonl", tmp_path / "baseline.jsonl"
    pipeline_seconds, pipeline_cpu = _run([], source, pipeline_out)
    baseline_seconds, baseline_cpu = _run(["--baseline"], source, baseline_out)
    pipeline_lines = pipeline_out.read_text().splitlines()
    flagged = sum(json.loads(line)["risk"] != "none" for line in pipeline_lines)
    pipeline_rate, baseline_rate = N / pipeline_seconds, N / baseline_seconds
    print(f"\nreview_text, {N} entries of 10-40 words, one core, start-up included:")
    print(f"  pipeline (rules + classifier): {pipeline_seconds:6.2f} s  {pipeline_rate:8.0f} entries/s  "
          f"(CPU {pipeline_cpu:.2f} s, {N / pipeline_cpu:.0f} entries per CPU-second; {flagged} flagged)")
    print(f"  keyword baseline:              {baseline_seconds:6.2f} s  {baseline_rate:8.0f} entries/s  "
          f"(CPU {baseline_cpu:.2f} s; mostly Django start-up)")
    print(f"  pipeline / baseline time: {pipeline_seconds / baseline_seconds:.2f}x")
    assert len(pipeline_lines) == N
    assert len(baseline_out.read_text().splitlines()) == N
    assert pipeline_rate >= TARGET_PER_SECOND, f"{pipeline_rate:.0f} entries/s is below {TARGET_PER_SECOND}"
