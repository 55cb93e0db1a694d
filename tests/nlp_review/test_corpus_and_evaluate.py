"""The corpus is what its README says, rebuilds byte for byte, and the evaluation reports every figure."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from nlp_review.corpus import (
    build,
    templates_dev,
    templates_holdout,
    templates_holdout2,
    templates_test,
    templates_train,
)
from nlp_review.evaluate import Scores, evaluate, format_reports, load, main
from nlp_review.pipeline.baseline import baseline_review, baseline_review_texts
from nlp_review.pipeline.types import Category, Severity


def test_corpus_rebuilds_to_the_committed_files() -> None:
    for entries, path in ((build.build_test(), build.TEST_PATH), (build.build_train(), build.TRAIN_PATH),
                          (build.build_dev(), build.DEV_PATH), (build.build_holdout(), build.HOLDOUT_PATH),
                          (build.build_holdout2(), build.HOLDOUT2_PATH)):
        assert "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries) == path.read_text()


def test_corpus_size_and_coverage() -> None:
    train, test = load("train"), load("test")
    assert len(train) + len(test) >= 800
    for split in (train, test):
        counts = Counter(label for entry in split for label in entry["labels"])  # type: ignore[attr-defined]
        assert all(counts[str(category)] >= 60 for category in Category), counts
        assert sum(1 for entry in split if not entry["labels"]) >= 60
        assert all(set(entry) >= {"id", "text", "labels", "severity", "split"} for entry in split)


def test_holdout_split_size_and_coverage() -> None:
    holdout = load("holdout")
    assert all(entry["split"] == "holdout" and str(entry["id"]).startswith("ho-") for entry in holdout)
    counts = Counter(label for entry in holdout for label in entry["labels"])  # type: ignore[attr-defined]
    assert all(counts[str(category)] >= 60 for category in Category), counts
    routine = [entry for entry in holdout if not entry["labels"]]
    assert len(routine) >= 250
    assert sum(1 for entry in routine if entry["kind"] == "negated") >= 120
    assert all(entry["severity"] == "none" for entry in routine)
    assert all(entry["severity"] != "none" for entry in holdout if entry["labels"])
    assert all(entry["kind"] in {"negated", "routine"} for entry in routine)
    assert {str(entry["kind"]) for entry in holdout} == {"event", "hedged", "historical", "hypothetical", "omission",
                                                         "negated", "routine"}


def _holdout2() -> list[dict[str, object]]:
    """Read holdout2.jsonl directly (no pipeline involved)."""
    return [json.loads(line) for line in build.HOLDOUT2_PATH.read_text(encoding="utf-8").splitlines()]


def test_holdout2_split_size_and_coverage() -> None:
    holdout2 = _holdout2()
    assert 850 <= len(holdout2) <= 950
    assert all(entry["split"] == "holdout2" and str(entry["id"]).startswith("h2-") for entry in holdout2)
    assert len({entry["id"] for entry in holdout2}) == len(holdout2)
    assert all(set(entry) == {"id", "text", "labels", "severity", "split", "kind"} for entry in holdout2)
    assert all(3 <= len(str(entry["text"]).split()) <= 45 for entry in holdout2)
    counts = Counter(label for entry in holdout2 for label in entry["labels"])  # type: ignore[attr-defined]
    assert all(counts[str(category)] >= 60 for category in Category), counts
    assert set(counts) <= {str(category) for category in Category}, counts
    routine = [entry for entry in holdout2 if not entry["labels"]]
    assert len(routine) >= 250
    assert sum(1 for entry in routine if entry["kind"] == "negated") >= 120
    assert all(entry["severity"] == "none" for entry in routine)
    assert all(entry["severity"] in {"critical", "major", "minor"} for entry in holdout2 if entry["labels"])
    assert all(entry["kind"] in {"negated", "routine"} for entry in routine)
    assert {str(entry["kind"]) for entry in holdout2} == {"event", "hedged", "historical", "hypothetical", "omission",
                                                          "negated", "routine"}
    # a historical entry is never critical (an earlier or other batch: critical lowered to major)
    assert all(entry["severity"] != "critical" for entry in holdout2 if entry["kind"] == "historical")


def test_holdout2_templates_follow_the_entry_format() -> None:
    categories = {str(category) for category in Category}
    kinds = {"event", "hedged", "historical", "hypothetical", "omission", "negated", "routine"}
    for kind, labels, severity, text in templates_holdout2.TEMPLATES:
        assert kind in kinds, text
        assert (kind in {"negated", "routine"}) == (labels == "") == (severity == "none"), text
        assert all(label in categories for label in labels.split("+") if label), text
        assert severity in {"critical", "major", "minor", "none"}, text
    assert all(all(values) for values in templates_holdout2.SLOTS.values())


def test_test_split_is_held_out_from_train_and_dev() -> None:
    seen = {str(e["text"]).lower() for split in ("train", "dev") for e in load(split)}
    assert not seen & {str(e["text"]).lower() for e in load("test")}
    test_templates = {t[3] for t in templates_test.TEMPLATES}
    assert not {t[3] for t in (*templates_train.TEMPLATES, *templates_dev.TEMPLATES)} & test_templates


def test_no_template_or_text_shared_between_the_five_splits() -> None:
    modules = {"train": templates_train, "test": templates_test, "dev": templates_dev, "holdout": templates_holdout,
               "holdout2": templates_holdout2}
    texts = {name: {t[3].lower() for t in module.TEMPLATES} for name, module in modules.items()}
    for name in texts:
        for other in texts:
            if name < other:
                assert not texts[name] & texts[other], (name, other)
    earlier = {split: {str(e["text"]).lower() for e in load(split)} for split in ("train", "test", "dev", "holdout")}
    assert not earlier["holdout"] & (earlier["train"] | earlier["test"] | earlier["dev"])
    holdout2 = {str(e["text"]).lower() for e in _holdout2()}
    for split, seen in earlier.items():
        shared = sorted(holdout2 & seen)  # only holdout2's own texts are ever shown
        assert not shared, (split, shared[:5])


def test_baseline_matches_plain_keywords_without_context() -> None:
    review = baseline_review("no growth observed")
    assert review.risk is Severity.CRITICAL  # what a keyword list does with negation
    assert review.flags[0].rule.startswith("baseline.")
    assert baseline_review("cells counted").flags == ()


def test_evaluate_reports_all_figures() -> None:
    entries = load("dev")[:40]  # a development split: nobody's run looks at holdout entries
    report, _ = evaluate(entries, baseline_review_texts)
    text = format_reports({"keyword baseline": report}, "dev", len(entries))
    for needle in ("needs attention P / R / F1", "critical missed", "critical graded below major",
                   "false flags, negated routine", *[str(c) for c in Category]):
        assert needle in text
    assert Scores.of(1, 1, 0).precision == 0.5


def test_holdout2_is_the_default_split_and_the_earlier_ones_are_described_as_former(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])  # exits in argument parsing: nothing is evaluated
    help_text = " ".join(capsys.readouterr().out.split())
    assert "holdout2 (default)" in help_text
    assert "holdout and test: former held-out splits" in help_text
    report, _ = evaluate(load("dev")[:5], baseline_review_texts)
    assert "held-out evaluation on nlp_review/corpus/holdout2.jsonl" in format_reports(
        {"keyword baseline": report}, "holdout2", 5)
    assert "former held-out split (run 3)" in format_reports({"keyword baseline": report}, "holdout", 5)
    assert "former held-out split" in format_reports({"keyword baseline": report}, "test", 5)


def test_errors_are_never_listed_for_the_held_out_split(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--errors"])  # refused in argument parsing: nothing is evaluated or printed
    assert exit_.value.code == 2
    assert "never on the held-out split" in capsys.readouterr().err


def test_the_classifier_never_trains_on_the_held_out_split() -> None:
    from nlp_review.pipeline.train import TRAINING_FILES, load_train

    assert "holdout2.jsonl" not in TRAINING_FILES
    assert {str(entry["split"]) for entry in load_train()} == {"train", "dev", "test", "holdout"}
