"""Local development defaults for manage.py: the base settings with a throwaway secret key, so
that commands such as makemigrations work on a fresh checkout. Deployments set
DJANGO_SETTINGS_MODULE=settings.base (federation/wsgi.py defaults to it) and a real key."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "dev-only-not-secret")

from settings.base import *  # noqa: F403
