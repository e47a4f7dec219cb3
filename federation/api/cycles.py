"""Python's cycle collector paused for the length of one large request.

A bulk submission builds tens of thousands of containers that live until it answers (the parsed
body, a parsed contribution, a row and a result per item) and form no reference cycles: reference
counts free them all. While they pile up, every 700 allocations start a young collection that
walks them, every tenth of those a middle one, and full collections walk everything the request
has built so far (what start-up built is out of reach, frozen by federation/wsgi.py): work that
finds nothing to free. Measured in docs/architecture.md, "Ingest".
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """Pause the cycle collector while the block runs (also usable as a decorator).

    Process-wide, so it is only turned back on by the call that turned it off (another thread's
    request that started later merely waits for its collections until then); garbage in cycles
    made meanwhile is collected by the first collection after."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
