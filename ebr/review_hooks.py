"""What batch release asks of the record review app (nlp_review/apps.py provides it).

nlp_review imports ebr, never the reverse, so ebr reaches the review through the app's
AppConfig; this Protocol states the calls it relies on, so that a change on either side is a
type error and not a failed release at run time.
"""

from __future__ import annotations

from typing import Protocol, cast

from django.apps import apps


class RecordReview(Protocol):
    def open_flags_count(self, batch_pk: int) -> int: ...

    def review_finished(self, batch_pk: int) -> bool: ...

    def review_version_finished(self, batch_pk: int) -> int | None: ...

    def review_readings_seen(self, batch_pk: int) -> set[int]: ...


def record_review() -> RecordReview:
    return cast(RecordReview, apps.get_app_config("nlp_review"))
