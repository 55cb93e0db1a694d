"""`create_instrument NAME --equipment EQ_ID`: register an instrument and print its token once.

The token is the only line on stdout (so a script can capture it); guidance goes to stderr.
Exit 2 with one line on unknown equipment (specs/commands.md).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ebr.models import Equipment
from ebr.services.instruments import instrument_register
from qms.audit import command_actor


class Command(BaseCommand):
    help = "Register an instrument for a piece of equipment and print its API token (shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Instrument name, e.g. BR-01-controller")
        parser.add_argument("--equipment", required=True, help="Equipment id as on its label, e.g. BR-01")
        parser.add_argument("--reason", default="Instrument registered", help="Why (audit trail)")

    def handle(self, *args: Any, **options: Any) -> None:
        code = options["equipment"]
        equipment = Equipment.objects.filter(code=code).first() or Equipment.objects.filter(code__iexact=code).first()
        if equipment is None:
            raise CommandError(f"unknown equipment {code}", returncode=2)
        try:
            registration = instrument_register(actor=command_actor("create_instrument"), name=options["name"],
                                               equipment=equipment, reason=options["reason"])
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stderr.write(f"Instrument {registration.instrument.name} registered for {equipment.code}. "
                          "Store the token now: it is shown only once.")
        self.stdout.write(registration.token)
