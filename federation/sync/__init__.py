"""Member sync: the change stream (one row per change members may see, sequenced after commit),
the delta API that serves it by cursor, the streamed bulk export, and compaction (docs/sync.md).

Writers call one function, ``federation.sync.changes.sync_changes_record``, in the transaction
that changes the entries.
"""
