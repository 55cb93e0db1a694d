"""The review_text contract in-process (nlp_review/pipeline/jsonl.py): order, errors, isolation, streaming."""

from __future__ import annotations

import io
import json

from nlp_review.pipeline.jsonl import answer_lines, review_jsonl
from nlp_review.pipeline.reviewer import Reviewer
from nlp_review.pipeline.types import TextReview


def test_a_text_the_pipeline_fails_on_gets_an_error_line_and_the_rest_go_on(rules_only: Reviewer) -> None:
    def fragile(texts: list[str]) -> list[TextReview]:
        if any("boom" in text for text in texts):
            raise RuntimeError("boom")
        return rules_only.review_texts(texts)

    lines = [b'{"id": 1, "text": "glove torn"}', b'{"id": 2, "text": "boom"}', b'{"id": 3, "text": "no leaks"}']
    answers = [json.loads(answer) for answer in answer_lines(lines, fragile)]
    assert [answer["id"] for answer in answers] == [1, 2, 3]
    assert answers[0]["risk"] == "critical"
    assert answers[1] == {"id": 2, "error": "review failed: RuntimeError: boom"}
    assert answers[2] == {"id": 3, "risk": "none", "flags": []}


def test_a_failing_text_alone_in_its_batch_gets_an_error_line_too(rules_only: Reviewer) -> None:
    """A line that arrives on its own (an interactive or slow producer) and fails: an error line,
    and the stream goes on; the command must not die on it."""
    def fragile(texts: list[str]) -> list[TextReview]:
        if any("boom" in text for text in texts):
            raise RuntimeError("boom")
        return rules_only.review_texts(texts)

    assert [json.loads(answer) for answer in answer_lines([b'{"id": 2, "text": "boom"}'], fragile)] == [
        {"id": 2, "error": "review failed: RuntimeError: boom"}]


def test_stream_in_small_batches_keeps_order(rules_only: Reviewer) -> None:
    source = io.BytesIO(b"".join(json.dumps({"id": i, "text": "glove torn" if i % 3 else "ok"}).encode() + b"\r\n"
                                 for i in range(50)))
    sink = io.BytesIO()
    assert review_jsonl(source, sink, rules_only.review_texts, batch_size=4) == 50
    answers = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert [answer["id"] for answer in answers] == list(range(50))
    assert [answer["risk"] for answer in answers[:3]] == ["none", "critical", "critical"]


def test_ids_are_echoed_exactly_even_beyond_64_bits(rules_only: Reviewer) -> None:
    """An id is the caller's key for matching answers to entries: it comes back as sent, not as a
    rounded float."""
    lines = [b'{"id": 123456789012345678901234567890, "text": "glove torn"}',
             b'{"id": -9223372036854775809}', b'{"id": 1.5, "text": "no leaks"}']
    answers = answer_lines(lines, rules_only.review_texts)

    assert answers[0].startswith(b'{"id":123456789012345678901234567890,"risk":"critical"')
    assert answers[1] == b'{"id":-9223372036854775809,"error":"missing \\"text\\""}'
    assert json.loads(answers[2])["id"] == 1.5
