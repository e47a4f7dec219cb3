"""A process-wide setting held while any of the blocks that want it runs.

Some settings are the process's, not a thread's (the cycle collector, the GIL's switch
interval), yet a block wants one only while it runs, and the threads of a web process run such
blocks side by side. ``HeldSetting`` counts the blocks in: the first applies the setting, the
last out restores what was there before it, so a block ending never undoes the setting under
another still running, whatever the order in which they end.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class HeldSetting:
    """``apply`` makes the change and returns how to undo it, or ``None`` when there is nothing
    to change (the setting already is as wanted: it is then left as it is)."""

    def __init__(self, apply: Callable[[], Callable[[], None] | None]) -> None:
        self._apply = apply
        self._lock = threading.Lock()
        self._holders = 0
        self._restore: Callable[[], None] | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._restore = self._apply()
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0 and self._restore is not None:
                    restore, self._restore = self._restore, None
                    restore()
