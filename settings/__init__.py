"""Concordat settings: ``base`` reads the environment; ``test`` and ``demo`` adjust it.

Importing the Celery app here makes ``@shared_task`` bind to it in every process."""

from settings.celery import app as celery_app

__all__ = ["celery_app"]
