"""Pausing Python's cycle collector around a bulk step that allocates a great deal.

A bulk ingest (10,000 items), a federation batch or a clustered match batch allocates hundreds of
thousands of objects, nearly all freed by reference counts alone. Each of them counts towards the
collector's thresholds, so the collector runs hundreds of times during the step, and each run
walks the step's live objects: measured at 7-14% of an ingest's CPU (docs/architecture.md,
"Ingest"), and 1.3-2.8 s against 0.8-1.1 s for a clustered match batch, whose answers are built
beside every rendering the match store keeps (docs/matching.md). Paused for the step, the cycles it does make (few) are collected at the first
collection after it.
"""

import gc
from collections.abc import Callable

from federation.process_wide import HeldSetting


def _collector_off() -> Callable[[], None] | None:
    if not gc.isenabled():  # turned off by something else: left to it
        return None
    gc.disable()
    return gc.enable


_PAUSED = HeldSetting(_collector_off)


def cycle_collection_paused():
    """The cycle collector off for the block. Process-wide: blocks running meanwhile in other
    threads share the pause, and the collector is on again once the last of them has ended
    (``federation.process_wide``); a collection merely waits until then."""
    return _PAUSED.held()
