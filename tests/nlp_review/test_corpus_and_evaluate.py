"""The corpus is what its README says, rebuilds byte for byte, and the evaluation reports every figure."""

from __future__ import annotations

import json
from collections import Counter

from nlp_review.corpus import build, templates_dev, templates_test, templates_train
from nlp_review.evaluate import Scores, evaluate, format_reports, load
from nlp_review.pipeline.baseline import baseline_review, baseline_review_texts
from nlp_review.pipeline.types import Category, Severity


def test_corpus_rebuilds_to_the_committed_files() -> None:
    for entries, path in ((build.build_test(), build.TEST_PATH), (build.build_train(), build.TRAIN_PATH),
                          (build.build_dev(), build.DEV_PATH)):
        assert "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries) == path.read_text()


def test_corpus_size_and_coverage() -> None:
    train, test = load("train"), load("test")
    assert len(train) + len(test) >= 800
    for split in (train, test):
        counts = Counter(label for entry in split for label in entry["labels"])  # type: ignore[attr-defined]
        assert all(counts[str(category)] >= 60 for category in Category), counts
        assert sum(1 for entry in split if not entry["labels"]) >= 60
        assert all(set(entry) >= {"id", "text", "labels", "severity", "split"} for entry in split)


def test_test_split_is_held_out_from_train_and_dev() -> None:
    seen = {str(e["text"]).lower() for split in ("train", "dev") for e in load(split)}
    assert not seen & {str(e["text"]).lower() for e in load("test")}
    test_templates = {t[3] for t in templates_test.TEMPLATES}
    assert not {t[3] for t in (*templates_train.TEMPLATES, *templates_dev.TEMPLATES)} & test_templates


def test_baseline_matches_plain_keywords_without_context() -> None:
    review = baseline_review("no growth observed")
    assert review.risk is Severity.CRITICAL  # what a keyword list does with negation
    assert review.flags[0].rule.startswith("baseline.")
    assert baseline_review("cells counted").flags == ()


def test_evaluate_reports_all_figures() -> None:
    entries = load("test")[:40]
    report, _ = evaluate(entries, baseline_review_texts)
    text = format_reports({"keyword baseline": report}, "test", len(entries))
    for needle in ("needs attention P / R / F1", "critical missed", "critical graded below major",
                   "false flags, negated routine", *[str(c) for c in Category]):
        assert needle in text
    assert Scores.of(1, 1, 0).precision == 0.5
