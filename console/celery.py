"""The Celery application. Tasks live in workers/, one module per domain."""

import os

from celery import Celery
from celery.signals import setup_logging

from console.env import env

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings.local")

app = Celery("atalaya")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(lambda: ["workers"], related_name=None)


if env.str("LOG_FORMAT", default="plain") == "json":
    # Workers and beat log through Django's LOGGING (JSON lines) instead of Celery's own format.
    @setup_logging.connect(weak=False)
    def _django_logging(**kwargs: object) -> None:
        from logging.config import dictConfig

        from django.conf import settings

        dictConfig(settings.LOGGING)
