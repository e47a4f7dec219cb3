"""Test settings: the real PostgreSQL and Redis, a throwaway hub key, fast password hashing."""

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-not-secret")

from settings.base import *  # noqa: F403
from settings.env import env_str

DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
DATABASES["default"]["NAME"] = env_str("CONCORDAT_TEST_DB_NAME", DATABASES["default"]["NAME"])  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
HUB_ID = "hub.test.concordat"
HUB_KEY_PATH = os.environ.get(
    "CONCORDAT_HUB_KEY_PATH", os.path.join(tempfile.gettempdir(), "concordat-test-hub-key.pem")
)
WITNESS_KEY_PATH = os.path.join(tempfile.gettempdir(), "concordat-test-witness-key.pem")
WITNESS_NAME = f"{HUB_ID}/witness"
LOOKUP_KEY_PATH = os.path.join(
    tempfile.gettempdir(), f"concordat-test-lookup-key-{os.getpid()}.json"
)
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = []  # noqa: F405
CELERY_TASK_ALWAYS_EAGER = False
MATCH_FOLLOW = False  # tests drive the match index with refresh(), in the test transaction
# Tests push many batches per process within a minute; the throttle test sets its own rate.
FEDERATION_PEER_RATE = "100000/minute"
