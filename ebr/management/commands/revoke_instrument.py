"""`revoke_instrument NAME`: revoke the instrument's token at once (exit 0; 2 on unknown name)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ebr.models import Instrument
from ebr.services.instruments import instrument_revoke
from qms.audit import command_actor


class Command(BaseCommand):
    help = "Revoke an instrument's API token; its readings and history stay."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--reason", default="Token revoked", help="Why (audit trail)")

    def handle(self, *args: Any, **options: Any) -> None:
        instrument = Instrument.objects.filter(name=options["name"]).first()
        if instrument is None:
            raise CommandError(f"unknown instrument {options['name']}", returncode=2)
        was_revoked = instrument.revoked_at is not None
        instrument = instrument_revoke(actor=command_actor("revoke_instrument"), instrument=instrument,
                                       reason=options["reason"])
        state = "was already revoked" if was_revoked else "revoked"
        self.stdout.write(f"instrument {instrument.name} {state} at {instrument.revoked_at:%Y-%m-%d %H:%M:%S %Z}")
