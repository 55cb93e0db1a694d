"""/healthz answers 200 only when database, Redis and a worker are all up."""

import pytest

pytestmark = pytest.mark.django_db


def test_healthy_when_database_redis_and_worker_are_up(client, worker, broker, settings):
    settings.REDIS_URL = broker.url

    response = client.get("/healthz")

    body = response.json()
    assert response.status_code == 200, body
    assert body["database"]["ok"] and body["redis"]["ok"] and body["workers"]["ok"]
    assert body["workers"]["count"] >= 1


def test_unhealthy_when_redis_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = client.get("/healthz")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["redis"]["ok"] is False
    assert body["workers"]["ok"] is False
    assert body["database"]["ok"] is True


def test_unhealthy_when_no_worker_consumes(client, broker, settings):
    settings.REDIS_URL = broker.url

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["workers"] == {"ok": False, "count": 0}


def test_health_check_needs_no_login_and_reveals_no_data(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    body = client.get("/healthz").json()

    assert set(body) == {"status", "database", "redis", "workers"}
