"""WSGI entry point (gunicorn federation.wsgi)."""

import gc
import os
import sys

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

from federation.enqueue import prepare_to_send
from federation.signature_processes import shared_processes
from settings.env import configuration_errors_in_one_line

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")
with configuration_errors_in_one_line("concordat (wsgi)"):
    application = get_wsgi_application()

# Django imports the URL patterns, and with them every view, serializer and API module (about
# 260 modules, 23,000 objects the collector tracks), on the first request, not at start-up: do
# it here, before the freeze below, or every full collection walks them for the life of the
# process (docs/sync.md, "Measured: a database without statistics").
get_resolver().url_patterns  # noqa: B018 (read for its side effect: the import)

# The verification processes (federation/signature_processes.py) start with the web process, not
# on its first bulk request or received batch: each is a new interpreter (about 0.07 s of CPU,
# 0.1 s until it reads), which that first request waited for, beside everything else a restart
# starts.
shared_processes(enabled=settings.SIGNATURE_VERIFY_PROCESSES)

# A web process's first Celery send (a nudge after its first commit) imported the broker's
# transport and built Celery's sender: about 85 ms of CPU inside that request. Done here instead.
prepare_to_send()

# What start-up created (modules, settings, URL patterns, about 130,000 objects) lives as long as
# the process: move it out of the cyclic collector's reach, so that a full collection walks only
# what requests create. Measured on the export of 1,000,000 entries, in one process: 80,000 to
# 138,000 entries/s (docs/sync.md), the difference being the collections that walked it all.
gc.freeze()

# The threads of a web process share the GIL. A thread whose query has returned gets it back only
# when the thread holding it lets go, and a thread busy in Python lets go only when asked, after
# the switch interval (5 ms by default): beside a large batch being parsed, a small one's ~40
# queries waited 5 ms or more each (measured: 40 queries beside a busy thread, 50-400 ms at 5 ms,
# 7-26 ms at 1 ms). A shorter interval costs the busy thread a switch more often, nothing else.
WEB_SWITCH_INTERVAL_SECONDS = 0.001
sys.setswitchinterval(WEB_SWITCH_INTERVAL_SECONDS)
