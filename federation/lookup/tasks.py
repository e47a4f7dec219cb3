"""Celery tasks of the private lookup: thin wrappers around its services, run by beat."""

from celery import shared_task

from federation.errors import Unavailable
from federation.lookup.services import lookup_usage_audit
from federation.lookup.table import lookup_table_refresh


@shared_task(acks_late=True, ignore_result=True)
def lookup_table_refresh_task() -> None:
    try:
        lookup_table_refresh()
    except Unavailable:
        return  # no lookup key on this hub: nothing to keep


@shared_task(acks_late=True, ignore_result=True)
def lookup_usage_audit_task() -> None:
    lookup_usage_audit()
