"""The `review_text` command's contract (specs/nlp-review.md), without Django: JSON Lines in, one
JSON line out per line in, same order; a bad line gets an error line and the stream goes on.

It streams: each read takes what has arrived (up to 64 KiB), reviews its complete lines in
batches of at most `batch_size` with nlp.pipe, writes and flushes their output lines; a caller
feeding one line at a time gets each answer straight away.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

import orjson

from nlp_review.pipeline.types import TextReview

ReviewMany = Callable[[list[str]], Iterable[TextReview]]
READ_SIZE = 1 << 16
BOM = b"\xef\xbb\xbf"


def review_jsonl(source: BinaryIO, sink: BinaryIO, review: ReviewMany, batch_size: int = 256) -> int:
    """Review every line of `source` into `sink`; returns the number of lines answered."""
    answered = 0
    for lines in _available_lines(source):
        for start in range(0, len(lines), batch_size):
            chunk = lines[start:start + batch_size]
            sink.write(b"".join(answer + b"\n" for answer in answer_lines(chunk, review)))
            sink.flush()
            answered += len(chunk)
    return answered


def answer_lines(lines: list[bytes], review: ReviewMany) -> list[bytes]:
    """One output line (without newline) per input line, in order."""
    answers: list[bytes | None] = []
    pending: list[tuple[int, object, str]] = []
    for index, line in enumerate(lines):
        parsed = _parse(line)
        if isinstance(parsed, bytes):
            answers.append(parsed)
        else:
            answers.append(None)
            pending.append((index, *parsed))
    for (index, _, _), answer in zip(pending, _review_all(pending, review), strict=True):
        answers[index] = answer
    return [answer for answer in answers if answer is not None]


def _review_all(pending: list[tuple[int, object, str]], review: ReviewMany) -> list[bytes]:
    """Output lines for the pending texts; a text the pipeline fails on gets an error line, the rest go on."""
    if not pending:
        return []
    try:
        reviews = list(review([text for _, _, text in pending]))
    except Exception:  # one bad text must not stop the stream: one by one, a failing one gets an error line
        return [_review_one(entry_id, text, review) for _, entry_id, text in pending]
    return [_result(entry_id, text_review) for (_, entry_id, _), text_review in zip(pending, reviews, strict=True)]


def _review_one(entry_id: object, text: str, review: ReviewMany) -> bytes:
    try:
        return _result(entry_id, next(iter(review([text]))))
    except Exception as error:
        return _error(entry_id, f"review failed: {type(error).__name__}: {error}")


def _result(entry_id: object, text_review: TextReview) -> bytes:
    return _dumps({"id": entry_id, "risk": str(text_review.risk),
                   "flags": [flag.as_contract_dict() for flag in text_review.flags]})


def _dumps(answer: dict[str, object]) -> bytes:
    try:
        return orjson.dumps(answer)
    except TypeError:  # an id beyond 64 bits: echoed exactly, as the caller sent it
        return json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()


def _parse(line: bytes) -> tuple[object, str] | bytes:
    """(id, text), or the finished error line."""
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        return _error(None, f"invalid JSON: {error}")
    if not isinstance(entry, dict):
        return _error(None, "a line must be a JSON object with a \"text\"")
    entry_id = entry.get("id")
    if type(entry_id) is float:  # orjson reads an integer beyond 64 bits as a float: read it exactly
        entry_id = json.loads(line).get("id")
    text = entry.get("text")
    if text is None:
        return _error(entry_id, "missing \"text\"")
    if not isinstance(text, str):
        return _error(entry_id, "\"text\" must be a string")
    return entry_id, text


def _error(entry_id: object, message: str) -> bytes:
    return _dumps({"id": entry_id, "error": message})


def _available_lines(source: BinaryIO) -> Iterator[list[bytes]]:
    """Complete lines as they arrive (a final line without newline counts too)."""
    read = getattr(source, "read1", source.read)
    pending, first = b"", True
    while True:
        data = read(READ_SIZE)
        if not data:
            break
        if first:
            # A file saved by a Windows editor starts with a UTF-8 byte order mark: not part of line 1.
            data, first = data.removeprefix(BOM), False
        pending += data
        *complete, pending = pending.split(b"\n")
        if complete:
            yield [line[:-1] if line.endswith(b"\r") else line for line in complete]
    if pending.strip():
        yield [pending[:-1] if pending.endswith(b"\r") else pending]
