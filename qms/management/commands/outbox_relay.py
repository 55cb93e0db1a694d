"""Send pending outbox messages to the broker, forever (or once with --once).

This process does not depend on the broker to be woken up, so it also sends what a broker
outage left behind as soon as the broker is back. It LISTENs for the NOTIFY that `enqueue`
issues for relay-sent work (settings.OUTBOX_RELAY_TASKS), so that work leaves within
milliseconds of its commit; otherwise it sweeps every --interval seconds.

What one sweep takes of a relay-sent task goes as one Celery message (at most
qms.outbox.GROUP_LIMIT rows), to the task that takes a group of them: a publish costs the relay
about 1 ms of CPU, measured, which was most of its cost per instrument post when every post was a
message of its own. Each outbox row records the Celery task id it went in.
"""

import logging
import time

from django.core.management.base import BaseCommand
from django.db import DatabaseError, InterfaceError, connection

from qms.outbox import SWEEP_LIMIT, outbox_relay_listen, outbox_relay_wait, outbox_sweep

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Dispatch pending outbox messages to Celery (a loop; --once for a single sweep)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--once", action="store_true", help="sweep once and exit")
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between sweeps when idle")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        listening = False
        while True:
            try:
                if not listening and not options["once"]:
                    outbox_relay_listen()
                    listening = True
                sent = outbox_sweep()
                if sent:
                    self.stdout.write(f"outbox: sent {sent}")
                if options["once"]:
                    return
                if sent < SWEEP_LIMIT:
                    outbox_relay_wait(options["interval"])
            except (DatabaseError, InterfaceError) as error:
                # The database restarting must not end the relay: reconnect, listen again, retry.
                log.warning("outbox relay: database unavailable: %s", error)
                connection.close()
                listening = False
                if options["once"]:
                    return
                time.sleep(options["interval"])
