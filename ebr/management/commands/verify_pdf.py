"""Check a signed PDF batch record: signature valid, signer trusted, nothing changed after signing.

Exit 0 valid (printing signer, signing time, time stamp, record fingerprint on standard output);
exit 1 invalid, altered, unsigned or unreadable, with one line on standard error saying why
(21 CFR 11.10(b)/(c), EU GMP Annex 11 §8). pyHanko's own warnings about a file it rejects (with
tracebacks) are not shown: the verdict line says what is wrong.
Trust comes from PDF_TRUST_ROOTS (the facility CA; the demo CA by default).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandParser

from qms.signatures import format_local


class Command(BaseCommand):
    help = "Verify the digital signature of a PDF batch record (exit 0 valid, 1 invalid or altered)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")

    def handle(self, *args: Any, **options: Any) -> None:
        from ebr.pdf.signing import SigningNotConfigured, pdf_verify

        path = Path(options["path"])
        try:
            with _pyhanko_quiet():
                result = pdf_verify(path.read_bytes())
        except OSError as error:
            self._fail(f"unreadable: {error.strerror or error} ({path})")
        except SigningNotConfigured as error:
            self._fail(f"cannot verify: {error}")
        if not result.valid:
            self._fail(result.reason)
        self.stdout.write(result.reason)
        self.stdout.write(f"signer: {result.signer}")
        self.stdout.write(f"signed at: {format_local(result.signed_at) if result.signed_at else 'not stated'}")
        self.stdout.write(f"time stamp: {format_local(result.timestamp) if result.timestamp else 'none (PAdES B-B)'}")
        self.stdout.write(f"batch: {result.batch or 'not stated'}")
        self.stdout.write(f"record fingerprint: sha256:{result.fingerprint or 'not stated'}")

    def _fail(self, why: str) -> NoReturn:
        self.stderr.write(why)
        sys.exit(1)


@contextmanager
def _pyhanko_quiet() -> Iterator[None]:
    logger = logging.getLogger("pyhanko")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
