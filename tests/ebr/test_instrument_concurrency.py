"""Concurrent, overlapping posts from one instrument: each (instrument, seq) is stored exactly once.

Committed data and real threads, each with its own database connection, so the unique index
and the ON CONFLICT clause are what decide, as under several gunicorn workers.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import orjson
from django.db import connection
from django.test import Client
from django.utils import timezone

from ebr.models import Reading, ReadingPost
from tests.ebr.process_builders import plant, reading

URL = "/api/v1/readings"


def test_eight_concurrent_overlapping_posts_store_each_seq_exactly_once(committed):
    site = plant()
    moment = timezone.now() - timedelta(minutes=5)
    # Eight posts of 400 readings each, every one overlapping its neighbours by half: seqs 0..1799.
    bodies = [orjson.dumps({"readings": [reading(seq, moment + timedelta(seconds=seq % 60), "ph", 7.0 + seq / 1e4)
                                         for seq in range(start, start + 400)]})
              for start in range(0, 1600, 200)]
    barrier, results = threading.Barrier(len(bodies)), {}

    def send(position: int, body: bytes) -> None:
        client = Client()
        barrier.wait()
        response = client.post(URL, data=body, content_type="application/json", **site.auth)
        results[position] = (response.status_code, response.json())
        connection.close()

    threads = [threading.Thread(target=send, args=(i, body)) for i, body in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert all(status == 201 for status, _ in results.values()), results
    assert sum(answer["accepted"] for _, answer in results.values()) == 1800
    assert sum(answer["duplicates"] for _, answer in results.values()) == 8 * 400 - 1800
    seqs = list(Reading.objects.filter(instrument=site.instrument).values_list("seq", flat=True))
    assert sorted(seqs) == list(range(1800))
    assert ReadingPost.objects.filter(instrument=site.instrument).count() == 8



def test_a_post_waiting_on_a_completing_batch_sees_its_assignment_end(committed):
    """A completion locks the batch and ends its equipment assignment; a post of readings taken after
    that moment waits for it and then finds no batch assigned (422), instead of writing them into the
    completed record through the assignment it read before the completion committed."""
    from ebr.models import Batch, EquipmentUse
    from ebr.services.readings import ReadingsRefused, readings_ingest
    from qms.audit import save_with_reason
    from tests.conftest import SEED, while_held

    site = plant()
    ended = timezone.now() - timedelta(minutes=2)
    body = orjson.dumps({"readings": [reading(1, ended + timedelta(seconds=30))]})

    def complete() -> None:
        Batch.objects.select_for_update().get(pk=site.batch.pk)
        use = EquipmentUse.objects.get(batch=site.batch, equipment=site.equipment, ended_at__isnull=True)
        use.ended_at = ended
        save_with_reason(use, actor=SEED, reason="Batch completed", update_fields=["ended_at"])

    outcome = while_held(complete, lambda: readings_ingest(instrument=site.instrument, body=body))

    assert isinstance(outcome, ReadingsRefused), f"stored into the completed record: {outcome}"
    assert outcome.status == 422
    assert not Reading.objects.filter(instrument=site.instrument).exists()
