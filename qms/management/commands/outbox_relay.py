"""Send pending outbox messages to the broker, forever (or once with --once).

This process does not depend on the broker to be woken up, so it also sends what a broker
outage left behind as soon as the broker is back.
"""

import logging
import time

from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection

from qms.outbox import outbox_sweep


class Command(BaseCommand):
    help = "Dispatch pending outbox messages to Celery (a loop; --once for a single sweep)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--once", action="store_true", help="sweep once and exit")
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between sweeps")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        while True:
            try:
                sent = outbox_sweep()
            except DatabaseError as error:
                # The database restarting must not end the relay; it retries on the next turn.
                logging.getLogger(__name__).warning("outbox relay: database unavailable: %s", error)
                connection.close()
                sent = 0
            if sent:
                self.stdout.write(f"outbox: sent {sent}")
            if options["once"]:
                return
            time.sleep(options["interval"])
