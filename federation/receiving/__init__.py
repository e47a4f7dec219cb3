"""Receiving from peer hubs: pushed batches and pulled feed pages, through one path (``receive``),
in three phases (``envelope``, ``items``, ``storage``), with foreign key bindings (``bindings``)
and the anti-entropy pull (``pull``). It sits above storage: it stores through
``federation.contributions`` and the lifecycle, whose downstream writes reach the outbox of
``federation.propagation``, which imports nothing of this package."""
