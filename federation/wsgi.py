"""WSGI entry point (gunicorn federation.wsgi)."""

import gc
import os

from django.core.wsgi import get_wsgi_application

from settings.env import configuration_errors_in_one_line

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")
with configuration_errors_in_one_line("concordat (wsgi)"):
    application = get_wsgi_application()

# What start-up created (modules, settings, URL patterns, about 150,000 objects) lives as long as
# the process: move it out of the cyclic collector's reach, so that a full collection walks only
# what requests create. Measured on the export of 1,000,000 entries, in one process: 80,000 to
# 138,000 entries/s (docs/sync.md), the difference being the collections that walked it all.
gc.freeze()
