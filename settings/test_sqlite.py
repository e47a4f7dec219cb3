"""Test settings on SQLite, the embedded database of ``make demo`` (settings/demo.py: same engine
and options), for the tests that check a feature works there too; everything else as
settings/test.py. The test database is a file of this process's own (threads of one test share
it as the demo's processes do)."""

import os
import tempfile

from settings.test import *  # noqa: F403

_FILE = os.path.join(tempfile.gettempdir(), f"concordat-test-{os.getpid()}.sqlite3")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _FILE,
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        "TEST": {"NAME": _FILE},
    }
}
