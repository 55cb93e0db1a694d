"""An anchored token-pattern matcher for the rules with gaps ("glove _{0,3} torn").

Why not spaCy's Matcher: its set predicates ({"IN": [...]}, {"NOT_IN": [...]}) are evaluated for
every token and every pattern through Python callbacks; on this rule set it was about fifteen
times slower than everything else in the pipeline together (tests/bench/test_review_text.py must
reach 2,000 texts a second on one core). Here each pattern is looked at only where one of its
required words occurs (its anchor), through a dict look-up per token, and extended left and right
from there. Semantics are those of rules/base.py: slots of alternative words, optional slots,
bounded gaps that never cross a barrier word, numbers and error codes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from nlp_review.pipeline.rules.base import BARRIER, GROUP_RE, NEGATION_WORDS, Polarity

NUMBER_RE = re.compile(r"^[+\-−<>~]?\d+(?:[.,]\d+)?(?:[eExX×].*)?$")
CODE_RE = re.compile(r"^(?:[A-Za-z]{1,3}-?\d{1,3}|\d{1,3})$")


@dataclass(frozen=True, slots=True)
class Slot:
    words: frozenset[str] | None  # None: any token (a gap)
    test: str  # "word", "gap", "number", "code"
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class AnchoredPattern:
    key: int
    slots: tuple[Slot, ...]
    anchor: int  # index of the required word slot the search starts from
    barrier: frozenset[str]
    required: tuple[frozenset[str], ...]  # every required word slot: all must occur in the text
    check: bool  # a CHECK rule's pattern (raises only when negated)


def compile_pattern(key: int, pattern: str, norm: object, polarity: Polarity, *, check_rule: bool) -> AnchoredPattern:
    """A plain pattern (no groups) of the rule language -> slots, anchored on its rarest-looking slot."""
    assert not GROUP_RE.search(pattern), "expand groups first"
    slots: list[Slot] = []
    for part in pattern.split():
        optional = part.endswith("?") and len(part) > 1
        body = part[:-1] if optional else part
        low, high = (0, 1) if optional else (1, 1)
        gap = re.fullmatch(r"_\{(\d+),(\d+)\}", body)
        if gap:
            slots.append(Slot(None, "gap", int(gap.group(1)), int(gap.group(2))))
        elif body == "_":
            slots.append(Slot(None, "gap", low, high))
        elif body in ("#", "@code"):
            slots.append(Slot(None, "number" if body == "#" else "code", low, high))
        else:
            slots.append(Slot(frozenset(norm(w) for w in body.split("|")), "word", low, high))  # type: ignore[operator]
    required = [i for i, s in enumerate(slots) if s.test == "word" and s.low == 1]
    if not required:
        raise ValueError(f"pattern needs a required word: {pattern!r}")
    anchor = min(required, key=lambda i: _anchor_cost(slots[i].words or frozenset()))
    barrier = frozenset(BARRIER + NEGATION_WORDS) if polarity is Polarity.EVENT else frozenset(BARRIER)
    return AnchoredPattern(key, tuple(slots), anchor, barrier,
                           tuple(slots[i].words or frozenset() for i in required if i != anchor), check_rule)


# Words too frequent in batch records to start a search from (each occurrence costs a pattern try).
WEAK_ANCHORS = frozenset({
    "a", "after", "and", "as", "at", "be", "by", "done", "for", "from", "in", "is", "no", "not", "of", "off", "on",
    "one", "out", "over", "run", "same", "step", "the", "time", "to", "up", "was", "with", "label", "verified",
    "completed", "temperature", "matches", "expiry", "mbr", "lot", "down", "before", "than", "been", "have",
})


def _anchor_cost(words: frozenset[str]) -> int:
    return 1000 * len(words & WEAK_ANCHORS) + len(words)


class AnchoredMatcher:
    def __init__(self) -> None:
        self.by_word: dict[str, list[AnchoredPattern]] = {}

    def add(self, pattern: AnchoredPattern) -> None:
        for word in pattern.slots[pattern.anchor].words or ():
            self.by_word.setdefault(word, []).append(pattern)

    @property
    def anchor_words(self) -> list[str]:
        return sorted(self.by_word)

    def __call__(self, norms: Sequence[str], texts: Sequence[str], positions: Sequence[int],
                 with_checks: bool = True) -> list[tuple[int, int, int]]:
        """(key, start, end) of the shortest match around each anchor occurrence at `positions`."""
        found: list[tuple[int, int, int]] = []
        present = set(norms)
        possible: dict[int, bool] = {}
        for i in positions:
            for pattern in self.by_word.get(norms[i], ()):
                if pattern.check and not with_checks:
                    continue
                ok = possible.get(id(pattern))
                if ok is None:
                    ok = possible[id(pattern)] = all(not words.isdisjoint(present) for words in pattern.required)
                if not ok:
                    continue
                span = _match_at(pattern, i, norms, texts)
                if span is not None:
                    found.append((pattern.key, *span))
        return found


def _accepts(slot: Slot, norm: str, text: str, barrier: frozenset[str]) -> bool:
    if slot.test == "word":
        return norm in (slot.words or ())
    if slot.test == "gap":
        return norm not in barrier
    if slot.test == "number":
        return NUMBER_RE.match(text) is not None
    return CODE_RE.match(text) is not None


def _extend(slots: Sequence[Slot], positions: set[int], step: int, norms: Sequence[str], texts: Sequence[str],
            barrier: frozenset[str]) -> set[int]:
    """Positions reachable after matching `slots` one after another, moving by `step` (+1 or -1)."""
    size = len(norms)
    for slot in slots:
        reached: set[int] = set()
        for position in positions:
            if slot.low == 0:
                reached.add(position)
            q = position
            for count in range(1, slot.high + 1):
                index = q if step > 0 else q - 1
                if not 0 <= index < size or not _accepts(slot, norms[index], texts[index], barrier):
                    break
                q += step
                if count >= slot.low:
                    reached.add(q)
        positions = reached
        if not positions:
            break
    return positions


def _match_at(pattern: AnchoredPattern, i: int, norms: Sequence[str], texts: Sequence[str]) -> tuple[int, int] | None:
    slots, a = pattern.slots, pattern.anchor
    ends = _extend(slots[a + 1:], {i + 1}, 1, norms, texts, pattern.barrier)
    if not ends:
        return None
    starts = _extend(list(reversed(slots[:a])), {i}, -1, norms, texts, pattern.barrier)
    if not starts:
        return None
    return max(starts), min(ends)
