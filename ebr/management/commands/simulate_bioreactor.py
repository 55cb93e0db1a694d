"""`simulate_bioreactor --batch B --hours H [--speed X] [--url URL --token T] [--excursion ph:6.6@12h] [--gap 30m@20h]`

A bioreactor posting CAR-T expansion data through the real HTTP API (ebr/simulator.py). Without
--token it registers (or reuses) an instrument for the bioreactor assigned to the batch and keeps
its token and sequence in .local/simulator/NAME.json, so a restart continues where it stopped.

The simulated clock runs --speed times real time (3600: one simulated hour per second) and ends
about when the run does; it never reports the future. A bioreactor assigned to the batch too
recently to hold the whole culture in the past gets it compressed into the time since the
assignment (see Command._plan), so a run right after seed_demo still takes hours / speed.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from ebr.models import Batch, Equipment, EquipmentType, EquipmentUse, Instrument
from ebr.selectors import batch_find
from ebr.services.instruments import instrument_for_token, instrument_register
from ebr.simulator import ApiClient, Excursion, Gap, Plan, SequenceState, SimulatorError, duration, run
from qms.audit import command_actor

MAX_BATCH_SIZE = 4000
MIN_COMPRESSED_INTERVAL = timedelta(milliseconds=10)
RESUME_SLACK = timedelta(seconds=5)


def _bioreactor_use(batch: Batch, equipment: Equipment | None = None, *, open_only: bool = False
                    ) -> EquipmentUse | None:
    uses = EquipmentUse.objects.filter(batch=batch).select_related("equipment").order_by("-started_at")
    if open_only:
        uses = uses.filter(ended_at__isnull=True)
    if equipment is not None:
        return uses.filter(equipment=equipment).first()
    return (uses.filter(equipment__equipment_type=EquipmentType.BIOREACTOR, ended_at__isnull=True).first()
            or uses.filter(equipment__equipment_type=EquipmentType.BIOREACTOR).first())


class Command(BaseCommand):
    help = "Simulate a bioreactor posting realistic CAR-T expansion data through the instrument API."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", required=True, help="Batch number, e.g. B-2026-0002")
        parser.add_argument("--hours", required=True, type=float, help="Simulated culture time to post")
        parser.add_argument("--speed", type=float, default=60.0,
                            help="Simulated seconds per real second (3600: one hour per second); default 60")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Server, default http://127.0.0.1:8000")
        parser.add_argument("--token", help="Instrument token; without it an instrument is registered for the "
                                            "batch's bioreactor")
        parser.add_argument("--instrument", help="Name of the instrument to register or reuse (no --token)")
        parser.add_argument("--equipment", help="Bioreactor (equipment id) when several are assigned (no --token)")
        parser.add_argument("--excursion", action="append", default=[], type=Excursion.parse,
                            help="PARAMETER:VALUE@TIME[+DURATION], e.g. ph:6.6@12h (30 min); repeatable")
        parser.add_argument("--gap", action="append", default=[], type=Gap.parse,
                            help="DURATION@TIME: send nothing for a while, e.g. 30m@20h; repeatable")
        parser.add_argument("--interval", type=duration, default=timedelta(seconds=60),
                            help="Online reading interval, default 60s")
        parser.add_argument("--start", type=datetime.fromisoformat, help="Simulated start (RFC 3339 with zone)")
        parser.add_argument("--batch-size", type=int, default=500,
                            help="Readings per request (at most 4000); default 500, so that the server evaluates "
                                 "each post before answering and the alarms it raised are printed")
        parser.add_argument("--state", type=Path, help="Sequence state file (default .local/simulator/NAME.json)")
        parser.add_argument("--seed", type=int, help="Random seed of the measurement noise")
        parser.add_argument("--max-retries", type=int, default=8)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["hours"] <= 0 or options["speed"] <= 0:
            raise CommandError("--hours and --speed must be positive.")
        if not 1 <= options["batch_size"] <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size is 1 to {MAX_BATCH_SIZE}.")
        culture = timedelta(hours=options["hours"])
        for name, events in (("--excursion", options["excursion"]), ("--gap", options["gap"])):
            late = next((event for event in events if event.at >= culture), None)
            if late is not None:  # it would silently never happen
                raise CommandError(f"{name} at {late.at} is not within the {options['hours']:g} h culture")
        self.verbosity = options["verbosity"]
        number = options["batch"]
        batch = batch_find(number)
        if batch is None and not options["token"]:
            raise CommandError(f"unknown batch {number}", returncode=2)
        if batch is not None:
            number = options["batch"] = batch.number  # the API matches the number as stored
        unreachable = ApiClient.unreachable(options["url"])
        if unreachable:  # before an instrument is registered for a run that cannot post
            raise CommandError(f"cannot reach {options['url']}: {unreachable}; nothing registered")
        token, state, use = self._credentials(batch, options)
        plan = self._plan(options, state, use)
        state.batch = number
        client = ApiClient(options["url"], token, max_retries=options["max_retries"], log=self._log)
        seed = options["seed"] if options["seed"] is not None else int(hashlib.sha256(number.encode()).hexdigest(), 16)
        self.stdout.write(f"simulating {options['hours']:g} h of {number} from {plan.first:%Y-%m-%d %H:%M} UTC "
                          f"at {options['speed']:g}x to {options['url']}")
        try:
            totals = run(plan=plan, client=client, state=state, batch=number, speed=options["speed"],
                         batch_size=options["batch_size"], seed=seed % 2**32, log=self._log)
        except SimulatorError as error:
            raise CommandError(f"the server refused the data: {error}") from None
        self.stdout.write(f"posted {totals.readings} readings in {totals.posts} requests: accepted {totals.accepted}, "
                          f"duplicates {totals.duplicates}; next seq {state.next_seq}")
        for alarm in totals.alarms.values():
            self.stdout.write(f"alarm {alarm['id']} {alarm['kind']} {alarm['parameter'] or 'data'} since "
                              f"{alarm['opened_at']}{' deviation ' + alarm['deviation'] if alarm['deviation'] else ''}")

    def _log(self, message: str) -> None:
        if self.verbosity >= 2 or message.startswith("retry"):
            self.stderr.write(message)

    def _credentials(self, batch: Batch | None, options: dict[str, Any]) -> tuple[str, SequenceState, Any]:
        directory = Path(settings.LOCAL_DIR) / "simulator"
        if options["token"]:
            token = options["token"]
            name = "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]
            state = SequenceState.load(options["state"] or directory / f"{name}.json")
            instrument = instrument_for_token(token)  # same database: start no earlier than the assignment
            use = _bioreactor_use(batch, instrument.equipment) if batch and instrument else None
            return token, state, use
        assert batch is not None
        chosen = None
        if options["equipment"]:
            chosen = Equipment.objects.filter(code=options["equipment"]).first()
            if chosen is None:
                raise CommandError(f"unknown equipment {options['equipment']}", returncode=2)
        # Only an assignment that still runs: a new instrument for a completed batch's bioreactor would
        # be registered for nothing, every post of it refused (the readings are in the present).
        use = _bioreactor_use(batch, chosen, open_only=True)
        if use is None:
            raise CommandError(f"no bioreactor is assigned to batch {batch.number} now (batch "
                               f"{batch.get_status_display().lower()}); nothing registered", returncode=2)
        name = options["instrument"] or f"{use.equipment.code}-simulator"
        state = SequenceState.load(options["state"] or directory / f"{name}.json")
        known = instrument_for_token(state.token) if state.token else None
        if known is None or known.equipment_id != use.equipment_id:
            state.token = self._register(name, use.equipment)
            state.save()
        return state.token, state, use

    def _register(self, name: str, equipment: Equipment) -> str:
        """A new token (the old one is unknown here); an existing name gets a numbered successor."""
        candidate, n = name, 1
        while Instrument.objects.filter(Q(name=candidate)).exists():
            n += 1
            candidate = f"{name}-{n}"
        registration = instrument_register(actor=command_actor("simulate_bioreactor"), name=candidate,
                                           equipment=equipment, reason="Bioreactor simulator")
        self.stderr.write(f"registered instrument {candidate} for {equipment.code}")
        return registration.token

    def _plan(self, options: dict[str, Any], state: SequenceState, use: EquipmentUse | None) -> Plan:
        """The culture to simulate. A restart for the same batch resumes the same culture up to
        its end; a finished one, or --start, begins a new culture.

        The culture ends about when the run does (now plus hours / speed). When the bioreactor
        was assigned to the batch more recently than the culture would have begun (right after
        seed_demo, say), the culture is compressed into the time since the assignment: readings
        keep real instrument times, never before the assignment and never in the future, and the
        run still takes hours / speed.
        """
        hours, speed, interval = options["hours"], options["speed"], options["interval"]
        if options["start"] is not None:
            if options["start"].tzinfo is None:
                raise CommandError("--start needs a time zone, e.g. 2026-11-27T08:00:00Z")
            return self._new_culture(options, state, options["start"])
        now, culture = datetime.now(UTC), timedelta(hours=hours)
        abandoned: datetime | None = None  # the end of a last culture that --speed cannot wait for
        ends = now + culture / speed
        start = ideal = ends - culture
        if use is not None:
            start = max(start, use.started_at)
        if state.batch == options["batch"] and state.culture_start and state.last_ts:
            began = datetime.fromisoformat(state.culture_start)
            resume = datetime.fromisoformat(state.last_ts.replace("Z", "+00:00")) + interval * state.time_scale
            # Times are kept to the millisecond: a culture whose last reading was sent ends within
            # half an interval of `resume`, not exactly at it (a compressed interval is short).
            end = began + culture * state.time_scale
            if end - resume > interval * state.time_scale / 2:
                # The rest of the culture keeps its time scale and real instrument times, so it cannot
                # end before `end`: resume only when that is about as soon as --speed asks for.
                rest = culture - (resume - began) / state.time_scale
                if end - now <= rest / speed + RESUME_SLACK:
                    return Plan(start=began, hours=hours, interval=interval, excursions=options["excursion"],
                                gaps=options["gap"], resume_from=resume, time_scale=state.time_scale)
                abandoned = end
            start = max(start, resume)
        start = start.replace(microsecond=0) + timedelta(seconds=1)  # readings carry milliseconds at most
        # Each compressed interval must keep readings apart at the millisecond the API keeps.
        if start > ideal + timedelta(seconds=1) and ends - start < culture / interval * MIN_COMPRESSED_INTERVAL:
            resumable = (f"; the last run's culture goes on only at its own pace, until {abandoned:%H:%M:%S} UTC"
                         if abandoned else "")
            raise CommandError(f"no room for {hours:g} h of culture between {start:%Y-%m-%d %H:%M:%S} UTC (the "
                               "bioreactor's assignment or its last reading) and the end of this run: run it "
                               f"longer (a lower --speed) or later{resumable}")
        if abandoned:
            self.stderr.write(f"the last run's culture would go on at its own pace until {abandoned:%H:%M:%S} UTC, "
                              f"longer than --speed {speed:g} allows: a new culture begins after its last reading")
        scale = 1.0 if start <= ideal + timedelta(seconds=1) else min(1.0, (ends - start) / culture)
        return self._new_culture(options, state, start, scale=scale)

    def _new_culture(self, options: dict[str, Any], state: SequenceState, start: datetime,
                     scale: float = 1.0) -> Plan:
        state.culture_start, state.time_scale = start.isoformat(), scale
        if scale < 1.0:
            self.stderr.write(f"{options['hours']:g} h of culture compressed into "
                              f"{timedelta(hours=options['hours']) * scale} from {start:%Y-%m-%d %H:%M:%S} UTC: the "
                              "bioreactor was assigned to the batch (or the last culture ended) too recently to hold "
                              "it in the past; readings keep real times")
        return Plan(start=start, hours=options["hours"], interval=options["interval"],
                    excursions=options["excursion"], gaps=options["gap"], time_scale=scale)
