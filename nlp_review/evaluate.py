"""Evaluate the review pipeline on the held-out corpus: `python -m nlp_review.evaluate`.

Prints, for the pipeline and for the keyword baseline side by side: needs-attention precision,
recall and F1 (an entry needs attention when its gold severity is not `none`); critical entries
missed and graded below major, as "k of n"; per-category precision, recall and F1; and the
false-flag rate on routine entries that negate or rule out an event.

The holdout2 split (the default) is the held-out part: a fifth voice written by a separate session
that never read the rules, the other splits or the pipeline's output, and nothing is tuned or trained
on it (nlp_review/corpus/README.md, run 4). `--split holdout` (run 3's held-out split, training data
of the classifier since 1.2.0) and `--split test` (run 1 and 2's) are former held-out splits;
`--split train` and `--split dev` show the development figures; `--errors` lists wrong entries
(use on the development splits, never on holdout2).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from nlp_review.pipeline.types import Category, Severity, TextReview

CORPUS = Path(__file__).resolve().parent / "corpus"
Reviewer = Callable[[list[str]], list[TextReview]]


@dataclass(frozen=True, slots=True)
class Scores:
    precision: float
    recall: float
    f1: float
    support: int

    @classmethod
    def of(cls, tp: int, fp: int, fn: int) -> Scores:
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(precision, recall, f1, tp + fn)


@dataclass(frozen=True, slots=True)
class Report:
    attention: Scores
    critical_total: int
    critical_missed: int
    critical_below_major: int
    critical_as_critical: int
    categories: dict[Category, Scores]
    negated_total: int
    negated_flagged: int
    routine_total: int
    routine_flagged: int
    seconds: float


def load(split: str) -> list[dict[str, object]]:
    path = CORPUS / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate(entries: Sequence[dict[str, object]], reviewer: Reviewer) -> tuple[Report, list[TextReview]]:
    started = time.perf_counter()
    reviews = reviewer([str(entry["text"]) for entry in entries])
    seconds = time.perf_counter() - started
    gold_attention = [entry["severity"] != "none" for entry in entries]
    predicted = [review.risk is not Severity.NONE for review in reviews]
    tp = sum(g and p for g, p in zip(gold_attention, predicted, strict=True))
    fp = sum(p and not g for g, p in zip(gold_attention, predicted, strict=True))
    fn = sum(g and not p for g, p in zip(gold_attention, predicted, strict=True))
    critical = [review for entry, review in zip(entries, reviews, strict=True) if entry["severity"] == "critical"]
    negated = [review for entry, review in zip(entries, reviews, strict=True) if entry.get("kind") == "negated"]
    routine = [review for entry, review in zip(entries, reviews, strict=True) if entry["severity"] == "none"]
    report = Report(
        attention=Scores.of(tp, fp, fn), critical_total=len(critical),
        critical_missed=sum(r.risk is Severity.NONE for r in critical),
        critical_below_major=sum(r.risk.rank < Severity.MAJOR.rank for r in critical),
        critical_as_critical=sum(r.risk is Severity.CRITICAL for r in critical),
        categories=_per_category(entries, reviews), negated_total=len(negated),
        negated_flagged=sum(r.needs_attention for r in negated), routine_total=len(routine),
        routine_flagged=sum(r.needs_attention for r in routine), seconds=seconds)
    return report, reviews


def _per_category(entries: Sequence[dict[str, object]], reviews: Sequence[TextReview]) -> dict[Category, Scores]:
    result = {}
    for category in Category:
        gold = [category in entry["labels"] for entry in entries]  # type: ignore[operator]
        pred = [category in review.categories for review in reviews]
        result[category] = Scores.of(sum(g and p for g, p in zip(gold, pred, strict=True)),
                                     sum(p and not g for g, p in zip(gold, pred, strict=True)),
                                     sum(g and not p for g, p in zip(gold, pred, strict=True)))
    return result


def format_reports(named: dict[str, Report], split: str, size: int) -> str:
    names = list(named)
    width = 30
    title = {"holdout2": f"held-out evaluation on nlp_review/corpus/holdout2.jsonl ({size} entries)",
             "holdout": f"former held-out split (run 3), used for development since run 4: "
                        f"nlp_review/corpus/holdout.jsonl ({size} entries)",
             "test": f"former held-out split, used for development since run 3: nlp_review/corpus/test.jsonl "
                     f"({size} entries)",
             "train": f"development figures on nlp_review/corpus/train.jsonl ({size} entries)",
             "dev": f"development figures on nlp_review/corpus/dev.jsonl ({size} entries)"}
    lines = [title.get(split, f"{split} ({size} entries)"),
             f"{'':34}" + "".join(f"{name:>{width}}" for name in names)]

    def row(label: str, cell: Callable[[Report], str]) -> None:
        lines.append(f"{label:34}" + "".join(f"{cell(named[name]):>{width}}" for name in names))

    row("needs attention P / R / F1", lambda r: _prf(r.attention))
    row("critical missed (risk none)", lambda r: f"{r.critical_missed} of {r.critical_total}")
    row("critical graded below major", lambda r: f"{r.critical_below_major} of {r.critical_total}")
    row("critical graded critical", lambda r: f"{r.critical_as_critical} of {r.critical_total}")
    row("false flags, negated routine", lambda r: f"{r.negated_flagged} of {r.negated_total} "
        f"({_rate(r.negated_flagged, r.negated_total)})")
    row("false flags, all routine", lambda r: f"{r.routine_flagged} of {r.routine_total} "
        f"({_rate(r.routine_flagged, r.routine_total)})")
    lines.append("per category P / R / F1 (support)")
    for category in Category:
        row(f"  {category}", partial(_category_cell, category))
    row("seconds (in-process, no start-up)", lambda r: f"{r.seconds:.2f}")
    return "\n".join(lines)


def _category_cell(category: Category, report: Report) -> str:
    return f"{_prf(report.categories[category])} ({report.categories[category].support})"


def _prf(scores: Scores) -> str:
    return f"{scores.precision:.3f} / {scores.recall:.3f} / {scores.f1:.3f}"


def _rate(k: int, n: int) -> str:
    return f"{k / n:.1%}" if n else "n/a"


def _errors(entries: Sequence[dict[str, object]], reviews: Sequence[TextReview]) -> str:
    lines = []
    for entry, review in zip(entries, reviews, strict=True):
        gold = set(entry["labels"])  # type: ignore[call-overload]
        got = {str(c) for c in review.categories}
        if gold != got or (entry["severity"] == "critical") != (review.risk is Severity.CRITICAL):
            flags = "; ".join(f"{f.category}/{f.severity}/{f.rule}:{f.evidence!r}" for f in review.flags)
            lines.append(f"{entry['id']} [{entry['kind']}] gold={sorted(gold)}/{entry['severity']} "
                         f"got={review.risk}: {entry['text']!r} -> {flags}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    from nlp_review.pipeline.baseline import baseline_review_texts
    from nlp_review.pipeline.reviewer import Reviewer as PipelineReviewer
    from nlp_review.pipeline.textcat import MODEL_DIR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="holdout2", choices=("holdout2", "holdout", "test", "train", "dev"),
                        help="holdout2 (default): the held-out split; holdout and test: former held-out splits, "
                             "used for development since runs 4 and 3; train, dev: development splits")
    parser.add_argument("--rules-only", action="store_true", help="also evaluate the pipeline without its model")
    parser.add_argument("--errors", action="store_true", help="list the pipeline's wrong entries")
    args = parser.parse_args(argv)
    if args.errors and args.split == "holdout2":
        parser.error("--errors prints entries: never on the held-out split (use a development split)")
    entries = load(args.split)
    pipeline = PipelineReviewer(MODEL_DIR)
    named: dict[str, Report] = {}
    report, reviews = evaluate(entries, pipeline.review_texts)
    named["pipeline"] = report
    if args.rules_only:
        named["rules only"] = evaluate(entries, PipelineReviewer(None).review_texts)[0]
    named["keyword baseline"] = evaluate(entries, baseline_review_texts)[0]
    print(f"pipeline {pipeline.pipeline_version}")
    print(format_reports(named, args.split, len(entries)))
    if args.errors:
        print(_errors(entries, reviews))


if __name__ == "__main__":
    main()
