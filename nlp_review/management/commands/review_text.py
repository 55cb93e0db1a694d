"""`python manage.py review_text`: JSON Lines of free text in, flags out (specs/nlp-review.md).

A thin wrapper around nlp_review.pipeline (no database: no system checks, no query, no
connection). Output is advice for a trained QA reviewer (draft EU GMP Annex 22).
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Read JSON Lines {\"id\", \"text\"} on stdin; write one JSON line of flags per input line to stdout."
    requires_system_checks: list[str] = []  # type: ignore[assignment]  # checks may touch the database
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=256, help="texts per nlp.pipe batch (default 256)")
        parser.add_argument("--rules-only", action="store_true", help="do not load the classifier")
        parser.add_argument("--baseline", action="store_true",
                            help="the plain keyword baseline instead of the pipeline (for comparison only)")

    def handle(self, *args: Any, **options: Any) -> None:
        from nlp_review.pipeline.jsonl import review_jsonl

        if options["baseline"]:
            from nlp_review.pipeline.baseline import BASELINE_VERSION, baseline_review_texts

            review, version = baseline_review_texts, BASELINE_VERSION
        else:
            from nlp_review.pipeline.reviewer import Reviewer
            from nlp_review.pipeline.textcat import MODEL_DIR

            reviewer = Reviewer(None if options["rules_only"] else MODEL_DIR)
            review, version = reviewer.review_texts, reviewer.pipeline_version
        if options["verbosity"] >= 2:
            self.stderr.write(f"review_text: {version}")
        # Everything built so far lives for the whole run: keep the cyclic GC from re-scanning it
        # on every collection while thousands of short-lived review objects come and go.
        gc.freeze()
        review_jsonl(sys.stdin.buffer, sys.stdout.buffer, review, batch_size=max(1, options["batch_size"]))
