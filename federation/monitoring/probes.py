"""The load balancer's probes (docs/operations.md, "Liveness and readiness").

Liveness says the process answers requests and touches nothing else, so that a database or broker
outage never makes a load balancer or an orchestrator restart every web process at once.
Readiness says this process can serve: its database answers, and the Celery broker accepts a
connection (without the broker, writes still commit, but their follow-up work, the outbox drain,
the sequencers' nudges, waits for the broker to return).
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

OK = "ok"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Readiness:
    database: str
    broker: str

    @property
    def ready(self) -> bool:
        return self.database == OK and self.broker == OK

    def as_dict(self) -> dict[str, str]:
        return {"database": self.database, "broker": self.broker}


def database_check() -> str:
    """``SELECT 1`` on this process's connection (opened if needed)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.warning("readiness: the database does not answer", exc_info=True)
        return UNAVAILABLE
    return OK


def broker_check() -> str:
    """A connection to the Celery broker, within ``READINESS_TIMEOUT_SECONDS``, no retries."""
    from settings.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=settings.READINESS_TIMEOUT_SECONDS)
    except Exception:  # kombu raises the transport's own errors (OperationalError, OSError…)
        logger.warning("readiness: the broker does not accept a connection", exc_info=True)
        return UNAVAILABLE
    return OK


def readiness() -> Readiness:
    return Readiness(database=database_check(), broker=broker_check())
