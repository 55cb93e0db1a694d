"""Build the labelled corpus: `python -m nlp_review.corpus.build` writes train, test, dev and holdout.jsonl.

Separate seeded generators, one per split, each with its own templates, slot fillers,
abbreviations and typo habits (templates_test.py was written first, templates_holdout.py last, by
a session that never read the rules or the other splits; see README.md). The output is
byte-for-byte reproducible: same code, same files.

It also writes holdout2.jsonl: a fifth voice (templates_holdout2.py, a hospital cell-processing and
apheresis unit), written blind to the pipeline like holdout, with its own seed and noise; it is
generated after the other four so that their files do not change.

Entry: {"id", "text", "labels", "severity", "split", "kind"}; `kind` (event, hedged, historical,
hypothetical, omission, negated, routine) says how the template was meant, so that evaluate.py
can report the false-flag rate on negated routine entries.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from nlp_review.corpus import templates_dev, templates_holdout, templates_holdout2, templates_test, templates_train

HERE = Path(__file__).resolve().parent
TRAIN_PATH = HERE / "train.jsonl"
TEST_PATH = HERE / "test.jsonl"
DEV_PATH = HERE / "dev.jsonl"
HOLDOUT_PATH = HERE / "holdout.jsonl"
HOLDOUT2_PATH = HERE / "holdout2.jsonl"
DEV_SEED = 31_337
TEST_SEED = 20_240_611
TRAIN_SEED = 7
HOLDOUT_SEED = 8_675_309
HOLDOUT2_SEED = 4_151_962

Template = tuple[str, str, str, str]
Noise = Callable[[random.Random, str], str]


def _fill(rng: random.Random, text: str, slots: dict[str, list[str]]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: rng.choice(slots[m.group(1)]), text)


def _abbreviate(rng: random.Random, text: str, table: dict[str, list[str]], rate: float) -> str:
    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        choices = table.get(word.lower())
        return rng.choice(choices) if choices and rng.random() < rate else word

    return re.sub(r"[A-Za-z]+", swap, text)


def _typo(rng: random.Random, word: str, kinds: str) -> str:
    if len(word) < 5 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(kinds)
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == "drop":
        return word[:i] + word[i + 1:]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    return word[:i] + rng.choice(string.ascii_lowercase) + word[i + 1:]  # "sub"


def _misspell(rng: random.Random, text: str, rate: float, kinds: tuple[str, ...]) -> str:
    words = text.split(" ")
    return " ".join(_typo(rng, w, kinds) if rng.random() < rate else w for w in words)  # type: ignore[arg-type]


def test_noise(rng: random.Random, text: str) -> str:
    """QA/handover voice: occasional abbreviation, rare typo, sometimes no full stop."""
    text = _abbreviate(rng, text, templates_test.ABBREVIATIONS, 0.3)
    text = _misspell(rng, text, 0.04, ("swap", "drop"))  # type: ignore[arg-type]
    if rng.random() < 0.25:
        text = text.rstrip(".")
    if rng.random() < 0.1:
        text = text.lower()
    return text


def train_noise(rng: random.Random, text: str) -> str:
    """Operator voice: heavy abbreviation, typos from gloved typing, random capitals."""
    text = _abbreviate(rng, text, templates_train.ABBREVIATIONS, 0.5)
    text = _misspell(rng, text, 0.07, ("swap", "drop", "double", "sub"))  # type: ignore[arg-type]
    roll = rng.random()
    if roll < 0.15:
        text = text.upper()
    elif roll < 0.45:
        text = text.lower()
    elif roll < 0.6:
        text = text[:1].upper() + text[1:]
    return text


def _variants(template: Template, count: int, rng: random.Random, slots: dict[str, list[str]],
              noise: Noise) -> list[str]:
    texts: list[str] = []
    for _ in range(count * 8):
        text = noise(rng, _fill(rng, template[3], slots)).strip()
        if text and text not in texts:
            texts.append(text)
        if len(texts) == count:
            break
    return texts


def generate(*, split: str, templates: list[Template], slots: dict[str, list[str]], noise: Noise,
             seed: int, per_kind: dict[str, int]) -> list[dict[str, object]]:
    rng = random.Random(seed)  # noqa: S311  (a seeded generator, for reproducibility, not security)
    seen: set[str] = set()
    entries: list[dict[str, object]] = []
    for template in templates:
        kind, labels, severity, _ = template
        for text in _variants(template, per_kind[kind], rng, slots, noise):
            if text.lower() in seen:
                continue
            seen.add(text.lower())
            entries.append({"text": text, "labels": [label for label in labels.split("+") if label],
                            "severity": severity, "split": split, "kind": kind})
    rng.shuffle(entries)
    prefix = {"test": "te", "train": "tr", "dev": "dv", "holdout": "ho", "holdout2": "h2"}[split]
    return [{"id": f"{prefix}-{i:04d}", **entry} for i, entry in enumerate(entries, start=1)]


def build_test() -> list[dict[str, object]]:
    per_kind = {"event": 6, "hedged": 6, "historical": 5, "hypothetical": 4, "omission": 6, "negated": 4, "routine": 8}
    return generate(split="test", templates=templates_test.TEMPLATES, slots=templates_test.SLOTS, noise=test_noise,
                    seed=TEST_SEED, per_kind=per_kind)


def dev_noise(rng: random.Random, text: str) -> str:
    """Alarm/correction/supervisor voice: some shorthand, few typos."""
    text = _abbreviate(rng, text, templates_dev.ABBREVIATIONS, 0.4)
    text = _misspell(rng, text, 0.03, ("swap", "drop", "double"))  # type: ignore[arg-type]
    return text.lower() if rng.random() < 0.2 else text


def build_dev() -> list[dict[str, object]]:
    """A third voice written after the first held-out run, for rule work and the classifier's threshold."""
    per_kind = {"event": 5, "hedged": 5, "historical": 4, "hypothetical": 4, "omission": 5, "negated": 5, "routine": 6}
    return generate(split="dev", templates=templates_dev.TEMPLATES, slots=templates_dev.SLOTS, noise=dev_noise,
                    seed=DEV_SEED, per_kind=per_kind)


def build_train() -> list[dict[str, object]]:
    per_kind = {"event": 9, "hedged": 8, "historical": 6, "hypothetical": 6, "omission": 9, "negated": 8,
                "routine": 14}
    return generate(split="train", templates=templates_train.TEMPLATES, slots=templates_train.SLOTS,
                    noise=train_noise, seed=TRAIN_SEED, per_kind=per_kind)


def _respell(rng: random.Random, text: str, table: dict[str, list[str]], rate: float) -> str:
    """Non-native spelling habits ("controll", "positiv"), first capital kept."""
    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        choices = table.get(word.lower())
        if not choices or rng.random() >= rate:
            return word
        spelt = rng.choice(choices)
        return spelt[:1].upper() + spelt[1:] if word[:1].isupper() else spelt

    return re.sub(r"[A-Za-z]+", swap, text)


def _holdout_typo(rng: random.Random, word: str) -> str:
    """QWERTZ keyboards: y and z trade places; otherwise a dropped or doubled letter."""
    if len(word) < 5 or not word.isalpha():
        return word
    if "y" in word or "z" in word:
        return word.translate(str.maketrans("yzYZ", "zyZY"))
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1:] if rng.random() < 0.5 else word[:i] + word[i] + word[i:]


def holdout_noise(rng: random.Random, text: str) -> str:
    """ATMP facility voice (QC micro, QP/QA, cryo logistics, non-native writers): shorthand, lab German
    nouns, non-native spellings, dropped articles, QWERTZ typos, often no full stop."""
    text = _abbreviate(rng, text, templates_holdout.ABBREVIATIONS, 0.3)
    text = _respell(rng, text, templates_holdout.SPELLINGS, 0.3)
    if rng.random() < 0.5:
        text = re.sub(r"(?<![\w-])(?:the|a|an) (?=\S)", "", text)
    words = text.split(" ")
    text = " ".join(_holdout_typo(rng, w) if rng.random() < 0.03 else w for w in words)
    if rng.random() < 0.4:
        text = text.rstrip(".")
    if rng.random() < 0.12:
        text = text.lower()
    return text


def build_holdout() -> list[dict[str, object]]:
    """A fourth voice, written after run 2 by a session that never read the rules or the other splits."""
    per_kind = {"event": 3, "hedged": 3, "historical": 3, "hypothetical": 3, "omission": 3, "negated": 3,
                "routine": 4}
    return generate(split="holdout", templates=templates_holdout.TEMPLATES, slots=templates_holdout.SLOTS,
                    noise=holdout_noise, seed=HOLDOUT_SEED, per_kind=per_kind)


_QWERTY_NEIGHBOURS = {
    "a": "qsz", "b": "vghn", "c": "xdfv", "d": "serfcx", "e": "wsdr", "f": "drtgvc", "g": "ftyhbv", "h": "gyujnb",
    "i": "ujko", "j": "huikmn", "k": "jiolm", "l": "kop", "m": "njk", "n": "bhjm", "o": "iklp", "p": "ol",
    "q": "wa", "r": "edft", "s": "awedxz", "t": "rfgy", "u": "yhji", "v": "cfgb", "w": "qase", "x": "zsdc",
    "y": "tghu", "z": "asx",
}


def _holdout2_typo(rng: random.Random, word: str) -> str:
    """Phone / tablet typing with gloves off: a neighbouring key on a US keyboard, or two letters swapped
    at the end of the word ("teh")."""
    if len(word) < 5 or not word.isalpha():
        return word
    if rng.random() < 0.6:
        i = rng.randrange(1, len(word))
        neighbours = _QWERTY_NEIGHBOURS.get(word[i].lower())
        if not neighbours:
            return word
        return word[:i] + rng.choice(neighbours) + word[i + 1:]
    return word[:-2] + word[-1] + word[-2]


def holdout2_noise(rng: random.Random, text: str) -> str:
    """Hospital cell-processing / apheresis voice (night-shift techs, RNs, vector and cryo rooms, QC lab):
    clinical shorthand, phone spellings, apostrophes dropped, lists run on with ";" "/" " - ",
    neighbouring-key typos, sometimes all lower case, rarely a full stop."""
    text = _abbreviate(rng, text, templates_holdout2.ABBREVIATIONS, 0.35)
    text = _respell(rng, text, templates_holdout2.SPELLINGS, 0.4)
    if rng.random() < 0.5:
        text = re.sub(r"(?<=[A-Za-z])'(?=[A-Za-z])", "", text)  # didn't -> didnt, pt's -> pts
    roll = rng.random()
    if roll < 0.3:
        text = text.replace(", ", rng.choice(("; ", " / ", " - ")))
    words = text.split(" ")
    text = " ".join(_holdout2_typo(rng, w) if rng.random() < 0.025 else w for w in words)
    roll = rng.random()
    if roll < 0.15:
        text = text.lower()
    elif roll < 0.45:
        text = text[:1].upper() + text[1:]
    if rng.random() < 0.1:
        text = text + "."
    return text


def build_holdout2() -> list[dict[str, object]]:
    """A fifth voice, written blind to the pipeline (never read the rules, the other splits' templates or
    entries, never ran the pipeline on it); see README.md, run 4."""
    per_kind = {"event": 3, "hedged": 3, "historical": 3, "hypothetical": 3, "omission": 3, "negated": 3,
                "routine": 4}
    return generate(split="holdout2", templates=templates_holdout2.TEMPLATES, slots=templates_holdout2.SLOTS,
                    noise=holdout2_noise, seed=HOLDOUT2_SEED, per_kind=per_kind)


def write(path: Path, entries: list[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for entry in entries:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")


def summary(entries: list[dict[str, object]]) -> str:
    labels = Counter(label for entry in entries for label in entry["labels"])  # type: ignore[attr-defined]
    kinds = Counter(str(entry["kind"]) for entry in entries)
    routine = sum(1 for entry in entries if not entry["labels"])
    return f"{len(entries)} entries; per category {dict(sorted(labels.items()))}; routine {routine}; {dict(kinds)}"


def main() -> None:
    test, train = build_test(), build_train()  # test first: its generator never sees train's state
    write(TEST_PATH, test)
    write(TRAIN_PATH, train)
    dev = build_dev()
    write(DEV_PATH, dev)
    print(f"test:  {summary(test)}")
    print(f"train: {summary(train)}")
    print(f"dev:   {summary(dev)}")
    holdout = build_holdout()  # its own generator and seed: the other files do not change
    write(HOLDOUT_PATH, holdout)
    print(f"holdout: {summary(holdout)}")
    holdout2 = build_holdout2()  # written last, own generator and seed: the other four files do not change
    write(HOLDOUT2_PATH, holdout2)
    print(f"holdout2: {summary(holdout2)}")


if __name__ == "__main__":
    main()
