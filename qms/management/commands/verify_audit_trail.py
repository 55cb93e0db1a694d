"""Walk the audit hash chain: exit 0 when intact, 1 naming the first broken entry."""

import sys
import time

from django.core.management.base import BaseCommand

from qms.audit.chain import audit_chain_verify


class Command(BaseCommand):
    help = "Recompute the audit trail's hash chain from the stored rows (exit 0 intact, 1 broken)."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        started = time.monotonic()
        report = audit_chain_verify()
        seconds = time.monotonic() - started
        if report.intact:
            self.stdout.write(f"audit trail intact: {report.entries} entries, "
                              f"{report.rows_checked} rows checked in {seconds:.1f} s")
            return
        self.stderr.write(f"audit trail BROKEN at {report.first_break}")
        sys.exit(1)
