"""Write the complete, digitally signed PDF record of one batch (21 CFR 11.10(b), EU GMP Annex 11 §8.1).

Exit 0 when written; 2 (with one line) when the batch does not exist; 1 on any other failure.
The export is recorded in the audit trail (EXPORT_CREATED) with the record fingerprint,
attributed to the operating-system account that ran the command (system:export_batch_pdf (os user
NAME), as every command's own actor) unless --user names the person exporting, who must hold a role that may
export batch records (QA, auditor). The output's directory must exist.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ebr.selectors import batch_find
from qms.audit import command_actor
from qms.models import User


class Command(BaseCommand):
    help = "Write the signed PDF record of BATCH_NO to --output PATH (exit 2 on unknown batch)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("batch_no")
        parser.add_argument("--output", "-o", required=True, help="Where to write the PDF.")
        parser.add_argument("--user", default="",
                            help="Username of the person exporting (default: the operating-system account).")

    def handle(self, *args: Any, **options: Any) -> None:
        from ebr.pdf.export import batch_pdf_write

        number = options["batch_no"]
        batch = batch_find(number)
        if batch is None:
            self.stderr.write(f"unknown batch {number}")
            sys.exit(2)
        actor: Any = command_actor("export_batch_pdf")
        if options["user"]:
            actor = User.objects.filter(username=options["user"], is_active=True).first()
            if actor is None:
                raise CommandError(f"unknown or inactive user {options['user']}")
        try:
            result = batch_pdf_write(batch=batch, path=Path(options["output"]), actor=actor)
        except (PermissionDenied, FileNotFoundError) as error:
            raise CommandError(f"export of {number} refused: {error}") from None
        except Exception as error:  # fonts, signing key, disk: one readable line, exit 1
            raise CommandError(f"export of {number} failed: {error}") from error
        self.stdout.write(f"{result.path}: {result.pages} pages, {result.size} bytes, signed; "
                          f"record fingerprint sha256:{result.fingerprint}; file sha256:{result.sha256}")
