"""The project's Celery app with a short broker visibility timeout: `celery -A tests.faults.redelivery_app worker`.

A task is acknowledged only when it has finished (acks_late), so the message of a task whose
whole worker was killed stays "unacked" in Redis until a consumer restores it, which Redis's
transport does once the message is older than the visibility timeout. Production keeps that at
3600 s (ebr/settings.py, longer than the hard time limit, so a running task is never handed out
twice); the replacement worker of the fault tests uses a few seconds, and sweeps every second,
so that the redelivery happens within the test. Everything else is the project's configuration.
"""

from ebr.celery import app

VISIBILITY_TIMEOUT = 5

app.conf.broker_url  # noqa: B018  (loads the Django settings first, so the line below overrides them)
app.conf.broker_transport_options = {**(app.conf.broker_transport_options or {}),
                                     "visibility_timeout": VISIBILITY_TIMEOUT,
                                     "unacked_restore_interval": 1, "unacked_restore_throttle": 1}

__all__ = ["app"]
