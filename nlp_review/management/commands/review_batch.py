"""`python manage.py review_batch BATCH_NO [--json]`: run the whole review of one batch now.

Prints its flags and risk score (specs/commands.md). Exit 0; 2 (with one line) on an unknown
batch. A released, rejected or aborted batch is not reviewed again (its review is part of that
decision's record): the review that decision rested on (the latest finished by then) is printed
instead, with a line on stderr saying so (exit 1 only if it never had one). Each run is a new
review version (request id ``cli-<uuid>``), kept beside earlier ones;
the flags are advice for QA to disposition (draft EU GMP Annex 22).
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ebr.selectors import batch_find
from qms.audit import command_actor


class Command(BaseCommand):
    help = "Review BATCH_NO now and print its flags and risk score (exit 2 on unknown batch)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("batch_no")
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        from nlp_review.models import ReviewStatus
        from nlp_review.selectors import review_flags
        from nlp_review.services import ReviewRefused, batch_review_run, decision_review, latest_review

        number = options["batch_no"]
        batch = batch_find(number)
        if batch is None:
            self.stderr.write(f"unknown batch {number}")
            sys.exit(2)
        try:
            review = batch_review_run(batch=batch, actor=command_actor("review_batch"),
                                      request_id=f"cli-{uuid.uuid4()}")
        except ReviewRefused as refused:
            # Released, rejected or aborted: the review the decision rested on is the batch's review.
            review, latest = decision_review(batch.pk), latest_review(batch.pk)
            if review is None:
                self.stderr.write(f"{refused.messages[0]} It has no finished review to show.")
                sys.exit(1)
            which = ("the latest" if latest is None or latest.pk == review.pk
                     else f"the latest finished before the decision (v{latest.version} is {latest.status})"
                     if latest.status == ReviewStatus.DONE
                     else f"the latest finished (v{latest.version} is {latest.status})")
            self.stderr.write(f"{refused.messages[0]} Shown: review v{review.version}, {which}.")
        flags = review_flags(review)
        if options["json"]:
            self.stdout.write(json.dumps({
                "batch": batch.number, "review_version": review.version, "pipeline_version": review.pipeline_version,
                "risk_score": review.risk_score,
                "counts": {"critical": review.critical_count, "major": review.major_count, "minor": review.minor_count},
                "flags": [_flag_json(flag) for flag in flags]}, ensure_ascii=False))
            return
        self.stdout.write(f"{batch.number}: review v{review.version}, risk score {review.risk_score} "
                          f"({review.critical_count} critical, {review.major_count} major, {review.minor_count} minor)")
        for flag in flags:
            where = f"step {flag.step.template.code}" if flag.step_id else "batch"
            self.stdout.write(f"  {flag.severity:<8} {flag.category:<15} {where:<10} {flag.rule}: {flag.evidence}")


def _flag_json(flag: Any) -> dict[str, Any]:
    return {"id": flag.pk, "category": flag.category, "severity": flag.severity, "rule": flag.rule,
            "rule_version": flag.rule_version, "source": flag.source_kind, "source_id": flag.source_id,
            "step": flag.step.template.code if flag.step_id else None, "start": flag.start, "end": flag.end,
            "evidence": flag.evidence}
