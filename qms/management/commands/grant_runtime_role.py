"""`grant_runtime_role ROLE`: let the database role web, workers, beat and relay use read and
write rows, and nothing more (qms/dbroles.py). Run it as the schema owner after every `migrate`.

Exit 0 with one line saying what was granted; 2 when the role does not exist; 1 when it cannot
serve as the runtime role (a superuser, the owner, a role owning tables).
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from qms.dbroles import RuntimeRoleRefused, runtime_role_grant


class Command(BaseCommand):
    help = "Grant the application's runtime database role row access only (run as the schema owner after migrate)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", help="The PostgreSQL role web, workers, beat and relay connect as")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            grant = runtime_role_grant(options["role"])
        except RuntimeRoleRefused as refused:
            self.stderr.write(f"grant_runtime_role: {refused}")
            sys.exit(2 if refused.unknown else 1)
        self.stdout.write(f"role {grant.role}: rows of {grant.tables} tables, of which {len(grant.append_only)} "
                          "append-only (read and insert only); no table owned, no trigger it can drop")
