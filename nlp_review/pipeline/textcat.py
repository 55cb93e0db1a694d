"""The project's text classifier: spaCy's `textcat_multilabel` with a bag-of-words model over NORM.

A linear model over hashed word uni- and bigrams of the normalised text (lexicon.py), so that
"viab", "Viability" and "viabilty" are one feature. It is small (well under 1 MB), fast, and
deterministic at inference. It is trained by `python -m nlp_review.pipeline.train` on the train
split of nlp_review/corpus/ only and shipped in nlp_review/pipeline/model/.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

import numpy
from spacy.attrs import NORM
from spacy.language import Language
from spacy.ml.models.textcat import resize_and_set_ref, resize_linear_weighted
from spacy.pipeline import TrainablePipe
from spacy.util import registry
from thinc.api import Logistic, Model, SparseLinear_v2, chain, resizable, with_cpu
from thinc.types import Floats2d

from nlp_review.pipeline.types import Category

MODEL_DIR = Path(__file__).resolve().parent / "model"
PIPE_NAME = "textcat_multilabel"
ARCHITECTURE = "ebr.TextCatBOWNorm.v1"
HASH_LENGTH = 2**15
LABELS = tuple(Category)


def norm_ngrams(ngram_size: int) -> Model:
    """spaCy's extract_ngrams over NORM, without the per-text `unique`: a repeated n-gram is passed
    twice with weight 1 instead of once with weight 2, which the sparse linear layer sums the same
    way, and it saves a sort per text on the hot path."""
    model: Model = Model("norm_ngrams", _norm_ngrams_forward)
    model.attrs["ngram_size"] = ngram_size
    return model


def _norm_ngrams_forward(model: Model, docs: list, is_train: bool) -> tuple:
    ops, size = model.ops, model.attrs["ngram_size"]
    batch_keys = []
    for doc in docs:
        unigrams = doc.to_array(NORM)
        grams = [unigrams] + [ops.ngrams(n, unigrams) for n in range(2, size + 1) if len(unigrams) >= n]
        batch_keys.append(numpy.concatenate(grams) if len(grams) > 1 else unigrams)
    lengths = ops.asarray([len(keys) for keys in batch_keys], dtype="int32")
    keys = numpy.concatenate(batch_keys) if batch_keys else numpy.zeros((0,), dtype="uint64")
    vals = ops.alloc1f(len(keys)) + 1.0

    def backprop(d_output: object) -> list:
        return []

    return (keys, vals, lengths), backprop


@registry.architectures(ARCHITECTURE)
def build_bow_norm_classifier(ngram_size: int = 2, length: int = HASH_LENGTH,
                              nO: int | None = None) -> Model[list, Floats2d]:
    """spaCy's TextCatBOW.v3 for multi-label output, reading NORM instead of ORTH (see norm_ngrams)."""
    sparse_linear = SparseLinear_v2(nO=nO, length=length)
    resizable_layer: Model = resizable(sparse_linear, resize_layer=partial(resize_linear_weighted,
                                                                           fill_defaults={"b": -1e6, "W": 0}))
    model: Model = chain(norm_ngrams(ngram_size), resizable_layer)
    model = chain(with_cpu(model, model.ops), with_cpu(Logistic(), model.ops))
    if nO is not None:
        model.set_dim("nO", cast(int, nO))
    model.set_ref("output_layer", sparse_linear)
    model.attrs["multi_label"] = True
    model.attrs["resize_output"] = partial(resize_and_set_ref, resizable_layer=resizable_layer)
    return model


def textcat_config() -> dict[str, object]:
    return {"threshold": 0.5, "model": {"@architectures": ARCHITECTURE, "ngram_size": 2, "length": HASH_LENGTH}}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What was loaded: its version (meta.json version + weights hash), thresholds and training facts."""

    version: str
    threshold: float
    meta: dict[str, object]

    @property
    def rule_id(self) -> str:
        return f"model.textcat@{self.version}"


def weights_digest(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted((model_dir / PIPE_NAME).rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


def textcat_pipe(nlp: Language) -> TrainablePipe:
    return cast(TrainablePipe, nlp.get_pipe(PIPE_NAME))


def add_textcat(nlp: Language) -> None:
    textcat = nlp.add_pipe(PIPE_NAME, config=textcat_config())
    for label in LABELS:
        textcat.add_label(str(label))  # type: ignore[attr-defined]


def load_textcat(nlp: Language, model_dir: Path = MODEL_DIR) -> ModelInfo | None:
    """Add the trained classifier to `nlp` from `model_dir`; None (rules alone) if it is not there."""
    meta_path = model_dir / "meta.json"
    if not meta_path.is_file() or not (model_dir / PIPE_NAME).is_dir():
        return None
    meta = json.loads(meta_path.read_text())
    add_textcat(nlp)
    textcat_pipe(nlp).from_disk(model_dir / PIPE_NAME, exclude=["vocab"])
    version = f"{meta['version']}-{weights_digest(model_dir)}"
    return ModelInfo(version=version, threshold=float(meta.get("threshold", 0.5)), meta=meta)
