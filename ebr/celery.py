"""The Celery application: Redis broker, JSON only, settings under CELERY_* in ebr/settings.py."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ebr.settings")

app = Celery("ebr")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
