"""The seeded world, built once for the package inside a transaction rolled back at its end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import TestCase

from tests.security.world import World, build_world


class _Seeding(TestCase):
    """Used only for its class-level atomics: Django marks them as test atomics, so that the
    services' durable blocks and each test's savepoint nest inside them."""

    databases = {"default"}


@pytest.fixture(scope="package")
def world(django_db_setup, django_db_blocker) -> Iterator[World]:  # type: ignore[no-untyped-def]
    with django_db_blocker.unblock():
        atomics = _Seeding._enter_atomics()
        try:
            built = build_world()
        except BaseException:
            _Seeding._rollback_atomics(atomics)
            raise
    yield built
    with django_db_blocker.unblock():
        _Seeding._rollback_atomics(atomics)


@pytest.fixture(autouse=True)
def _quick_worker_ping(monkeypatch: pytest.MonkeyPatch) -> None:
    """/healthz waits a second for a Celery worker that these tests never start."""
    monkeypatch.setattr("ebr.health.WORKER_PING_TIMEOUT", 0.01)
