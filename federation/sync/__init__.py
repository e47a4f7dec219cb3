"""Member sync: the change stream (one row per change members may see, sequenced after commit),
the delta API that serves it by cursor, the streamed bulk export, and compaction (docs/sync.md).

The stream is written by one function, ``federation.sync.changes.sync_changes_record``, called
from ``federation.downstream`` in the transaction that changes the entries.
"""
