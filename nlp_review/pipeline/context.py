"""A ConText-style context component (Harkema et al. 2009, J Biomed Inform 42:839), written here.

Trigger phrases modify the rule targets in their scope: a forward trigger ("no", "possible",
"previous batch") covers what follows it, a backward trigger ("ruled out", "negative",
"suspected") what precedes it, up to a window of tokens and never past a terminator (".", ";",
"but", "however", ...). A comma ends a scope too, unless what follows is a list ("no particles,
turbidity or clumps"). Longer triggers win over the shorter ones they contain, so
"cannot be ruled out" is uncertainty, not negation, and pseudo-triggers ("no change",
"not only", "no longer") block the negation they contain.

How the modifiers change a flag is policy.py's business; this module only finds them.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from nlp_review.pipeline.types import FlagContext


class Modifier(StrEnum):
    NEGATED = "negated"
    UNCERTAIN = "uncertain"
    HYPOTHETICAL = "hypothetical"
    HISTORICAL = "historical"
    OTHER_BATCH = "other_batch"
    PSEUDO = "pseudo"


class Direction(StrEnum):
    FORWARD = "forward"
    BACKWARD = "backward"
    BOTH = "both"


@dataclass(frozen=True, slots=True)
class TriggerKind:
    modifier: Modifier
    direction: Direction
    forward: int = 6
    backward: int = 4
    events_only: bool = False  # "ok", "intact", "passed" rule out an event but do not negate a check


NEG_FWD = TriggerKind(Modifier.NEGATED, Direction.FORWARD, forward=5)
NEG_BACK = TriggerKind(Modifier.NEGATED, Direction.BACKWARD, backward=4)
# "not observed" looks both ways: "growth not observed", "did not observe any turbidity".
NEG_PERCEIVED = TriggerKind(Modifier.NEGATED, Direction.BOTH, forward=5, backward=4)
NEG_NORMAL = TriggerKind(Modifier.NEGATED, Direction.BACKWARD, backward=4, events_only=True)
NEG_BOTH = TriggerKind(Modifier.NEGATED, Direction.BOTH, forward=5, backward=3)
NEG_RULED_OUT = TriggerKind(Modifier.NEGATED, Direction.BOTH, forward=5, backward=8)
UNCERTAIN = TriggerKind(Modifier.UNCERTAIN, Direction.BOTH, forward=6, backward=3)
UNCERTAIN_FWD = TriggerKind(Modifier.UNCERTAIN, Direction.FORWARD, forward=4)
HYPOTHETICAL = TriggerKind(Modifier.HYPOTHETICAL, Direction.FORWARD, forward=8)
HISTORICAL = TriggerKind(Modifier.HISTORICAL, Direction.BOTH, forward=12, backward=12)
OTHER_BATCH = TriggerKind(Modifier.OTHER_BATCH, Direction.BOTH, forward=12, backward=12)
PSEUDO = TriggerKind(Modifier.PSEUDO, Direction.FORWARD, forward=0)

PAST_UNITS = ("batch|batches|run|runs|lot|order|orders|manufacture|manufacturing|campaign|production|process|"
              "week|month|year|time|occasion|occasions|shipment|delivery|collection|harvest")

# (kind, patterns) in the pattern language of rules/base.py, phrases only (no "_" or "#"):
# words separated by spaces, alternatives for one word separated by "|", "?" for optional.
# Contractions arrive as two words: "can't" and "cannot" are "can not", "couldn't" is "could not".
TRIGGERS: tuple[tuple[TriggerKind, tuple[str, ...]], ...] = (
    # "none" and "nil" negate what precedes them too: "Growth: none", "Leaks - nil".
    (NEG_BOTH, ("not", "none|nil")),
    (NEG_RULED_OUT, ("ruled out", "excluded", "not confirmed|detected|found")),
    # "nobody" as "no": "Nobody checked the COI" is an omission, "nobody reported leaks" rules them out.
    (NEG_FWD, ("no|without|never|nor|neither|zero|0|nothing|nobody|noone|no-one|avoid|prevent|preventing|avoiding",
               "none of", "absence of", "free of|from", "negative for", "no evidence|sign|signs of", "rules out",
               "to avoid|prevent")),
    (NEG_BACK, ("negative|absent",)),
    (NEG_PERCEIVED, ("not seen|observed|present|noted|evident|identified|visible|shown",
                     # A bare "no" answering a question or a heading: "Leak? No.", "Turbidity: no".
                     "? no|nope|none|nil", ": no|nope")),
    (NEG_NORMAL, ("free|passed|pass|ok|okay|intact|normal|clear|satisfactory|unremarkable|conforms|conform|compliant|"
                  "acceptable|fine|nad", "within|in limit|limits|range|spec|specification|specifications|tolerance")),
    (PSEUDO, ("no change|changes|longer|doubt|further|increase|decrease", "not only|necessarily|just|always|applicable",
              "without delay|fail|exception",
              # narrative past, not a condition: "the door would not close", "had to be restarted"
              "would not|n't|never", "had|needed|has|have to be?")),
    (UNCERTAIN, ("possible|possibly|probable|probably|suspected|suspect|suspicion|suspicious|query|queried|likely|"
                 "unclear|uncertain|unsure|potential|potentially|apparent|apparently|appears|appeared|seems|seemed|"
                 "presumed|presumably|questionable|doubtful|maybe|perhaps|tbc|pending|investigating",
                 "may|might|could", "may|might|could have|be|been", "not sure|certain|clear",
                 "looks|look|looked like?", "to be confirmed|investigated|checked", "under investigation|review",
                 # Longer than the hypothetical "if"/"whether" they hold: doubt about this batch's event.
                 "not sure|certain|clear if|whether", "unclear|unsure|uncertain|unknown if|whether",
                 "can|could not be? excluded|ruled out?", "can|could not exclude|rule out?",
                 "not ruled|excluded out?")),
    (UNCERTAIN_FWD, ("?",)),
    (HYPOTHETICAL, ("if|unless|whether|would|will|plan|planned", "in case of?", "in the event of?",
                    "should the|it|any", "to be", "risk of", "check|monitor|watch|look for")),
    (HISTORICAL, (f"previous|prior|last|earlier|past|preceding {PAST_UNITS}", "previously|historically|historical",
                  "history of", "in the past", "on a previous")),
    (OTHER_BATCH, ("other|another|different|neighbouring|neighboring|adjacent|next batch|batches|suite|room|lab|"
                   "cleanroom|product", "batch next door", "other|another patient 's batch")),
)

TERMINATORS = frozenset({".", ";", "!", "but", "however", "although", "though", "whereas", "except", "yet", "->",
                         "=>", "then", "so", "because", "since", "which", "while", "\n", "\n\n"})
# A forward negation also ends at a preposition of time: "gloves not changed after tear" denies the
# change, not the tear.
FORWARD_NEGATION_STOPS = frozenset({"and", "+", "&", "after", "despite", "following"})
# A forward scope also ends at a dash between words ("no leak - glove torn").
FORWARD_TERMINATORS = TERMINATORS | {"-", "–", "—", "|"}
# A forward negation's scope ends after the word that closes what it negates: "no leaks seen glove torn"
# negates the leaks, not the glove.
NEGATION_CLOSERS = frozenset({"seen", "observed", "noted", "found", "detected", "present", "evident", "visible",
                              "identified", "noticed", "reported", "occurred", "apparent", "recorded"})
LIST_WORDS = frozenset({"or", "nor", "and"})


@dataclass(frozen=True, slots=True)
class TriggerHit:
    start: int
    end: int
    kind: TriggerKind


def resolve_triggers(hits: Sequence[TriggerHit]) -> list[TriggerHit]:
    """Longest trigger wins where triggers overlap; pseudo-triggers then drop out."""
    kept: list[TriggerHit] = []
    taken: set[int] = set()
    for hit in sorted(hits, key=lambda h: (h.start - h.end, h.start)):
        if not taken.intersection(range(hit.start, hit.end)):
            kept.append(hit)
            taken.update(range(hit.start, hit.end))
    return sorted((h for h in kept if h.kind.modifier is not Modifier.PSEUDO), key=lambda h: h.start)


def _forward_end(norms: Sequence[str], start: int, window: int, negation: bool) -> int:
    end = min(len(norms), start + window)
    for i in range(start, end):
        word = norms[i]
        if word in FORWARD_TERMINATORS or (negation and word in FORWARD_NEGATION_STOPS):
            return i
        if word == "," and not _list_follows(norms, i + 1):
            return i
        if negation and word in NEGATION_CLOSERS and i > start:
            return i + 1
    return end


def _list_follows(norms: Sequence[str], start: int) -> bool:
    """After a comma: does the clause go on as a list ("X, Y or Z")?"""
    for word in norms[start:start + 6]:
        if word in TERMINATORS or word == ",":
            return False
        if word in ("or", "nor"):
            return True
    return False


def _backward_start(norms: Sequence[str], end: int, window: int) -> int:
    start = max(0, end - window)
    for i in range(end - 1, start - 1, -1):
        if norms[i] in TERMINATORS or norms[i] == ",":
            return i + 1
    return start


def omission_span(norms: Sequence[str], triggers: Sequence[TriggerHit], start: int, end: int) -> tuple[int, int]:
    """Evidence for an omission: the control, the negation that makes it one, and its verb
    ("no EM plate taken", "verification not performed")."""
    for trigger in triggers:
        if trigger.kind.modifier is Modifier.NEGATED and start - 2 <= trigger.start and trigger.end <= end + 3:
            start, end = min(start, trigger.start), max(end, trigger.end)
    while end < len(norms) and end < start + 12 and norms[end] in PARTICIPLES:
        end += 1
    return start, end


PARTICIPLES = frozenset({"taken", "done", "performed", "completed", "exposed", "checked", "verified", "carried", "out",
                         "signed", "confirmed", "recorded", "available", "present", "attached", "cleaned", "received",
                         "documented", "witnessed", "scanned", "reconciled", "calibrated", "not", "yet", "been",
                         "was", "were", "is", "are"})


OMISSION_WINDOW = 8
# A negation of an absence affirms: "no missing signature", "logger not missing".
ABSENCE_WORDS = frozenset({"missing", "absent", "lost", "omitted", "outstanding", "lacking", "gone"})
# "Turbidity: no" answers for what precedes it; "Logger data: no alarms" heads a finding about what
# follows, and says nothing against the logger.
BARE_ANSWERS = frozenset({"no", "nope"})
# The farthest any trigger's scope reaches from it, in tokens: triggers farther from a target than
# this cannot modify it (modifiers_for).
SCOPE_REACH = max(OMISSION_WINDOW, 2, *(max(kind.forward, kind.backward) for kind, _ in TRIGGERS)) + 1
OMISSION_VERBS = (PARTICIPLES - {"not", "yet", "been", "was", "were", "is", "are", "out", "present"}) | {
    "filled", "entered", "logged", "switched", "turned", "started", "attached", "available", "followed", "executed",
    "completed", "finished", "initialed", "countersigned", "reviewed", "approved", "provided", "sent", "collected"}


def _omission_verb_after(norms: Sequence[str], i: int) -> bool:
    """Is the negation followed by the verb of a control ("not [yet] [been] documented")?"""
    while i < len(norms) and norms[i] in ("yet", "been", "be", "fully", "properly", "correctly"):
        i += 1
    return i < len(norms) and norms[i] in OMISSION_VERBS


def _start(trigger: TriggerHit) -> int:
    return trigger.start


def _end(trigger: TriggerHit) -> int:
    return trigger.end


def modifiers_for(norms: Sequence[str], triggers: Sequence[TriggerHit], start: int, end: int, *,
                  check_rule: bool) -> FlagContext:
    """The modifiers whose scope covers the target `norms[start:end]`.

    For CHECK rules (negated = omission), a negation inside the target counts ("label not
    checked") and a forward negation must stand right before it ("no EM plate taken"), so that
    "no growth on settle plates" does not read as "no settle plates".
    For EVENT rules a negation inside the matched pattern is part of the pattern ("not per SOP").
    `triggers` as `resolve_triggers` gives them: in order and not overlapping, so that only those
    within a scope's reach of the target are looked at (a pasted log of 200,000 characters has
    thousands of targets and triggers; looking at every pair took seconds).
    """
    found: set[Modifier] = set()
    first = bisect_right(triggers, start - SCOPE_REACH, key=_end)
    last = bisect_left(triggers, end + SCOPE_REACH, lo=first, key=_start)
    for trigger in triggers[first:last]:
        kind = trigger.kind
        negation = kind.modifier is Modifier.NEGATED
        if check_rule and kind.events_only:
            continue
        if check_rule and negation and trigger.end < len(norms) and norms[trigger.end] in ABSENCE_WORDS:
            continue  # "no missing second signature": the control is affirmed
        if trigger.start < end and start < trigger.end:  # inside or overlapping the target
            if not (negation and not check_rule):
                found.add(kind.modifier)
            continue
        if kind.direction is not Direction.BACKWARD and trigger.end <= start:
            window = 2 if (negation and check_rule) else kind.forward
            if start < _forward_end(norms, trigger.end, window, negation):
                found.add(kind.modifier)
                continue
        backward = kind.backward
        if negation and check_rule and _omission_verb_after(norms, trigger.end):
            backward = OMISSION_WINDOW  # "line clearance for suite 2 was not documented"
        if (check_rule and kind is NEG_PERCEIVED and trigger.end < len(norms)
                and norms[trigger.end - 1] in BARE_ANSWERS and norms[trigger.end].isalnum()):
            continue  # "Active air sampler: no colonies": the "no" is about the colonies
        if (kind.direction is not Direction.FORWARD and trigger.start >= end
                and end > _backward_start(norms, trigger.start, backward)):
            found.add(kind.modifier)
    return FlagContext(negated=Modifier.NEGATED in found, uncertain=Modifier.UNCERTAIN in found,
                       hypothetical=Modifier.HYPOTHETICAL in found, historical=Modifier.HISTORICAL in found,
                       other_batch=Modifier.OTHER_BATCH in found)
