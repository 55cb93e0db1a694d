"""Train the text classifier: `python -m nlp_review.pipeline.train [--output DIR] [--cv]`.

Trains spaCy's `textcat_multilabel` (textcat.py: bag of word uni- and bigrams over NORM) on the
train, dev, test and holdout splits of nlp_review/corpus/ (the former held-out splits are training
data since pipeline 1.1.0 (test) and 1.2.0 (holdout); the held-out split holdout2 is never read
here), with a fixed seed, a fixed example order and a fixed number of epochs, and writes it to
nlp_review/pipeline/model/
(weights + meta.json). Same corpus, same code, same spaCy: the same weights, byte for byte
(tests/nlp_review check it).
Takes seconds on one core; the model is well under 1 MB.

`--cv` also prints 5-fold cross-validation on the training entries (classifier alone, and rules +
classifier), which is how the threshold was chosen (then checked on the dev split with a model
trained on train alone); the held-out split is never read here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.util import fix_random_seed, minibatch

from nlp_review.pipeline.reviewer import build_nlp
from nlp_review.pipeline.textcat import LABELS, MODEL_DIR, PIPE_NAME, add_textcat, textcat_pipe
from nlp_review.pipeline.types import TextReview

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
TRAINING_FILES = ("train.jsonl", "dev.jsonl", "test.jsonl", "holdout.jsonl")  # never holdout2.jsonl: held out
TRAINING_SPLITS = ("train", "dev", "test", "holdout")
MODEL_VERSION = "1.2.1"
SEED = 20_240_601
EPOCHS = 12
BATCH_SIZE = 16
THRESHOLD = 0.5  # chosen by 5-fold cross-validation on the train split (`--cv`)


def load_train(files: Sequence[str] = TRAINING_FILES) -> list[dict[str, object]]:
    """The train, dev and the former held-out test and holdout splits (corpus/README.md); never holdout2."""
    entries = [json.loads(line) for name in files for line in (CORPUS / name).read_text(encoding="utf-8").splitlines()
               if line.strip()]
    assert all(entry.get("split") in TRAINING_SPLITS for entry in entries), "the held-out split is never trained on"
    return entries


def _examples(nlp: Language, entries: Sequence[dict[str, object]]) -> list[Example]:
    examples = []
    for entry in entries:
        labels = set(entry["labels"])  # type: ignore[call-overload]
        doc = nlp.make_doc(str(entry["text"]))
        examples.append(Example.from_dict(doc, {"cats": {str(label): float(label in labels) for label in LABELS}}))
    return examples


def train(entries: Sequence[dict[str, object]], *, epochs: int = EPOCHS, seed: int = SEED) -> Language:
    """A pipeline whose textcat is trained on `entries`; deterministic for a given seed."""
    fix_random_seed(seed)
    nlp = build_nlp()
    add_textcat(nlp)
    examples = _examples(nlp, entries)
    optimizer = nlp.initialize(lambda: examples)
    order = random.Random(seed)  # noqa: S311  (seeded for a reproducible example order)
    with nlp.select_pipes(enable=[PIPE_NAME]):
        for _ in range(epochs):
            shuffled = list(examples)
            order.shuffle(shuffled)
            for batch in minibatch(shuffled, size=BATCH_SIZE):
                nlp.update(batch, sgd=optimizer, drop=0.0)
    return nlp


def save(nlp: Language, entries: Sequence[dict[str, object]], output: Path = MODEL_DIR) -> None:
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    textcat_pipe(nlp).to_disk(output / PIPE_NAME, exclude=["vocab"])
    corpus_digest = hashlib.sha256("\n".join(json.dumps(e, sort_keys=True) for e in entries).encode()).hexdigest()
    meta = {
        "name": "ebr-nlp-review textcat", "version": MODEL_VERSION, "threshold": THRESHOLD, "labels": list(LABELS),
        "architecture": "ebr.TextCatBOWNorm.v1 (bag of NORM uni+bigrams, 2^15 hashed features)",
        "trained_on": [f"nlp_review/corpus/{name}" for name in TRAINING_FILES], "train_entries": len(entries),
        "train_sha256": corpus_digest, "seed": SEED, "epochs": EPOCHS, "batch_size": BATCH_SIZE,
        "spacy_version": spacy.__version__, "command": "python -m nlp_review.pipeline.train",
        "intended_use": "Advice to a trained QA reviewer on batch record free text (draft EU GMP Annex 22); "
                        "never releases or rejects a batch; rules alone raise critical flags.",
    }
    (output / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def cross_validate(entries: Sequence[dict[str, object]], folds: int = 5,
                   thresholds: Sequence[float] = (0.5, 0.6, 0.7)) -> None:
    """Print out-of-fold figures for the classifier alone and for rules + classifier, per threshold."""
    from nlp_review.evaluate import evaluate, format_reports
    from nlp_review.pipeline.reviewer import Reviewer
    shuffled = list(entries)
    random.Random(SEED).shuffle(shuffled)  # noqa: S311  (seeded fold assignment)
    ordered: list[dict[str, object]] = []
    reviews: dict[tuple[float, bool], list[TextReview]] = {(t, r): [] for t in thresholds for r in (False, True)}
    for fold in range(folds):
        held = shuffled[fold::folds]
        rest = [e for i, e in enumerate(shuffled) if i % folds != fold]
        nlp = train(rest)
        ordered += held
        for threshold in thresholds:
            with _temporary_model(nlp, rest, threshold) as model_dir:
                for use_rules in (False, True):
                    reviewer = Reviewer(model_dir)
                    if not use_rules:
                        reviewer.nlp.remove_pipe("ebr_review_rules")
                    reviews[(threshold, use_rules)] += reviewer.review_texts([str(e["text"]) for e in held])
    for threshold in thresholds:
        reports = {name: evaluate(ordered, partial(_given, reviews[(threshold, use_rules)]))[0]
                   for name, use_rules in (("classifier alone", False), ("rules + classifier", True))}
        print(f"threshold {threshold}:\n" + format_reports(reports, "train (5-fold out-of-fold)", len(entries)))


def _given(reviews: list[TextReview], _texts: list[str]) -> list[TextReview]:
    return reviews


class _temporary_model:
    def __init__(self, nlp: Language, entries: Sequence[dict[str, object]], threshold: float) -> None:
        import tempfile

        self.directory = Path(tempfile.mkdtemp(prefix="ebr-textcat-"))
        save(nlp, entries, self.directory / "model")
        meta_path = self.directory / "model" / "meta.json"
        meta = json.loads(meta_path.read_text())
        meta["threshold"] = threshold
        meta_path.write_text(json.dumps(meta))

    def __enter__(self) -> Path:
        return self.directory / "model"

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=MODEL_DIR)
    parser.add_argument("--cv", action="store_true", help="also print 5-fold cross-validation on the train split")
    args = parser.parse_args(argv)
    entries = load_train()
    started = time.perf_counter()
    nlp = train(entries)
    save(nlp, entries, args.output)
    size = sum(p.stat().st_size for p in args.output.rglob("*") if p.is_file())
    print(f"trained on {len(entries)} entries in {time.perf_counter() - started:.1f} s; "
          f"wrote {args.output} ({size / 1024:.0f} KiB)")
    if args.cv:
        cross_validate(entries)


if __name__ == "__main__":
    main()
