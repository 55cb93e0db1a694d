"""Project package and manufacturing app: master records, batches, execution, instruments, PDFs."""

from ebr.celery import app as celery_app

__all__ = ["celery_app"]
