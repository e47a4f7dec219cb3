"""Celery tasks of the private lookup: thin wrappers around its services, run by beat."""

from celery import shared_task

from federation.enqueue import TaskName
from federation.errors import Unavailable
from federation.lookup.services import lookup_usage_audit
from federation.lookup.table import lookup_table_refresh


@shared_task(name=TaskName.LOOKUP_TABLE_REFRESH, acks_late=True, ignore_result=True)
def lookup_table_refresh_task() -> None:
    try:
        lookup_table_refresh()
    except Unavailable:
        return  # no lookup key on this hub: nothing to keep


@shared_task(name=TaskName.LOOKUP_USAGE_AUDIT, acks_late=True, ignore_result=True)
def lookup_usage_audit_task() -> None:
    lookup_usage_audit()
