"""The Celery application. Workers run ``celery -A settings.celery worker``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")

app = Celery("concordat")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["federation.transparency", "federation.sync", "federation.propagation"])
# Federation: the pull (anti-entropy) tasks live beside the receiving service.
app.autodiscover_tasks(["federation.propagation"], related_name="pull")
