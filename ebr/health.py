"""`/healthz`: is the database, the broker and at least one worker up? 200 only when all are."""

from __future__ import annotations

import time
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

WORKER_PING_TIMEOUT = 1.0


def _database() -> dict[str, Any]:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        return {"ok": False, "error": type(error).__name__}
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}


def _redis() -> dict[str, Any]:
    started = time.monotonic()
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
    except Exception as error:
        return {"ok": False, "error": type(error).__name__}
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}


def _workers(broker_ok: bool) -> dict[str, Any]:
    if not broker_ok:
        return {"ok": False, "error": "broker unreachable"}
    from ebr.celery import app

    try:
        replies = app.control.ping(timeout=WORKER_PING_TIMEOUT) or []
    except Exception as error:
        return {"ok": False, "error": type(error).__name__}
    return {"ok": bool(replies), "count": len(replies)}


@never_cache
@login_not_required
def healthz(request: HttpRequest) -> JsonResponse:
    database = _database()
    broker = _redis()
    workers = _workers(broker["ok"])
    healthy = database["ok"] and broker["ok"] and workers["ok"]
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "database": database, "redis": broker,
         "workers": workers},
        status=200 if healthy else 503,
    )
