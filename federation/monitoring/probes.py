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
    """A connection to the Celery broker, within ``READINESS_TIMEOUT_SECONDS``, no retries.

    The bound is passed to the transport too: kombu's own ``timeout`` does not cut a connect or a
    handshake short, and a broker that accepts the connection but never answers would otherwise
    hold the probe (and a web worker) for as long as the socket waits, without end for Redis."""
    from settings.celery import app

    bound = settings.READINESS_TIMEOUT_SECONDS
    try:
        with app.connection_for_write(
            connect_timeout=bound,
            transport_options={"socket_connect_timeout": bound, "socket_timeout": bound},
        ) as conn:
            conn.ensure_connection(max_retries=0, timeout=bound)
    except Exception:  # kombu raises the transport's own errors (OperationalError, OSError…)
        logger.warning("readiness: the broker does not accept a connection", exc_info=True)
        return UNAVAILABLE
    return OK


def readiness() -> Readiness:
    return Readiness(database=database_check(), broker=broker_check())
