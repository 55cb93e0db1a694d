"""`instrument_parameter_add CODE --meaning M --unit U`: extend the parameter registry (data, not code)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ebr.services.instruments import instrument_parameter_add
from qms.audit import command_actor


class Command(BaseCommand):
    help = "Add a parameter (code, meaning, UCUM unit) that instruments may then post."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", help="e.g. osmolality")
        parser.add_argument("--meaning", required=True, help="e.g. 'osmolality of the medium'")
        parser.add_argument("--unit", required=True, help="UCUM code, e.g. mosm/kg")
        parser.add_argument("--reason", default="Parameter added to the registry", help="Why (audit trail)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            parameter = instrument_parameter_add(actor=command_actor("instrument_parameter_add"), code=options["code"],
                                                 meaning=options["meaning"], unit=options["unit"],
                                                 reason=options["reason"])
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(f"parameter {parameter.code} {parameter.unit}")
