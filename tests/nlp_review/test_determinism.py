"""Same input, same output; the shipped model loads; without it the pipeline says it runs on rules alone."""

from __future__ import annotations

import json
from pathlib import Path

from nlp_review.pipeline.reviewer import Reviewer
from nlp_review.pipeline.textcat import MODEL_DIR
from nlp_review.pipeline.train import load_train, save, train

TEXTS = ["Glove torn during transfer in BSC, changed gloves.", "viab 58% (limit ≥70%), recount pending",
         "no growth observed", "label not checked", "incubator CO2 alarm INC-2", "cells counted 7.2e6 cells/mL"]


def test_same_input_gives_the_same_output(reviewer: Reviewer) -> None:
    first = reviewer.review_texts(TEXTS)
    assert reviewer.review_texts(TEXTS) == first
    assert [reviewer.review_text(text) for text in TEXTS] == first
    assert Reviewer(MODEL_DIR).review_texts(TEXTS) == first


def test_batching_does_not_change_results(reviewer: Reviewer) -> None:
    texts = TEXTS * 50
    assert reviewer.review_texts(texts, batch_size=7) == reviewer.review_texts(texts, batch_size=256)


def test_shipped_model_is_loaded_and_versioned(reviewer: Reviewer) -> None:
    assert reviewer.model is not None
    assert "+textcat." in reviewer.pipeline_version
    assert reviewer.model.rule_id.startswith("model.textcat@1.2.1-")
    assert sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file()) < 5 * 1024 * 1024


def test_without_a_model_the_pipeline_runs_on_rules_and_says_so(tmp_path: Path) -> None:
    reviewer = Reviewer(tmp_path / "no-model-here")
    assert reviewer.model is None
    assert reviewer.pipeline_version.endswith("+rules-only")
    review = reviewer.review_text(TEXTS[0])
    assert review.pipeline_version == reviewer.pipeline_version
    assert review.flags[0].rule == "aseptic.glove_breach"
    assert review.scores == ()


def test_model_flags_are_never_critical(reviewer: Reviewer) -> None:
    texts = [json.loads(line)["text"] for line in (MODEL_DIR.parent.parent / "corpus" / "train.jsonl").open()]
    for review in reviewer.review_texts(texts):
        for flag in review.flags:
            if flag.rule.startswith("model."):
                assert flag.severity.value == "major"
                assert flag.score is not None


def test_training_is_deterministic(tmp_path: Path) -> None:
    entries = load_train()[:300]
    for name in ("a", "b"):
        save(train(entries, epochs=2), entries, tmp_path / name)
    weights = [(tmp_path / name / "textcat_multilabel" / "model").read_bytes() for name in ("a", "b")]
    assert weights[0] == weights[1]
    assert (tmp_path / "a" / "meta.json").read_text() == (tmp_path / "b" / "meta.json").read_text()
