"""Celery tasks for the transparency log: thin wrappers around the sequencer and the collection
of witnesses' cosignatures."""

import logging

from celery import shared_task
from django.conf import settings

from federation.enqueue import TaskName, enqueue

logger = logging.getLogger(__name__)


@shared_task(name=TaskName.SEQUENCE_AUDIT_LOG, acks_late=True, ignore_result=True)
def sequence_audit_log() -> int:
    """Sequence pending audit events into the Merkle tree and sign a checkpoint."""
    from federation.transparency.sequencer import sequence_pending

    return sequence_pending()


@shared_task(name=TaskName.COSIGN_WITH_WITNESS, bind=True, acks_late=True, ignore_result=True)
def cosign_with_witness(self, witness_id: int) -> str:
    """Ask one witness for its cosignature on the latest checkpoint; retried with exponential
    backoff while it is unreachable, then left to the periodic run."""
    from federation.transparency.cosigning import (
        WitnessRefused,
        WitnessUnavailable,
        cosignatures_collect,
    )

    try:
        return cosignatures_collect(witness_id=witness_id).result
    except WitnessUnavailable as exc:
        if self.request.retries >= settings.WITNESS_MAX_RETRIES:
            logger.warning(
                "witness %s unavailable, giving up until the next run: %s", witness_id, exc
            )
            return "unavailable"
        raise self.retry(
            exc=exc,
            countdown=settings.WITNESS_RETRY_SECONDS * 2**self.request.retries,
            max_retries=settings.WITNESS_MAX_RETRIES,
        ) from exc
    except WitnessRefused as exc:
        logger.error("witness %s refused to cosign: %s", witness_id, exc)
        return "refused"


@shared_task(name=TaskName.COLLECT_COSIGNATURES, acks_late=True, ignore_result=True)
def collect_cosignatures() -> int:
    """One task per active witness (run after each checkpoint and periodically by beat)."""
    from federation.transparency.models import Witness

    ids = list(Witness.objects.filter(active=True).values_list("pk", flat=True))
    for witness_id in ids:
        enqueue(TaskName.COSIGN_WITH_WITNESS, witness_id)
    return len(ids)
