"""Settings shared by every deployment, configured from environment variables.

Production reads everything from the environment; ``settings.test`` and ``settings.demo`` only
change defaults. No secret lives in this repository.
"""

from pathlib import Path

import dj_database_url

from federation.enqueue import TaskName, task_routes
from settings.env import env_bool, env_int, env_list, env_networks, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = env_str(
    "DJANGO_SECRET_KEY",
    None if not env_bool("DJANGO_DEBUG", False) else "dev-only",
    hint="a long random string, e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(50))'",
)
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    # Before django.contrib.auth: its createsuperuser and changepassword replace Django's (audited).
    "members.accounts",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "members",
    "federation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "federation.api.middleware.api_https_required",  # plain-HTTP API calls: a JSON 403, no redirect
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "federation.api.middleware.ApiAwareCommonMiddleware",  # no slash redirects under /api/
    "federation.api.middleware.api_query_without_nul",  # PostgreSQL text holds no NUL: a 400
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "federation.urls"
WSGI_APPLICATION = "federation.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/concordat"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
# Times on the hub's pages carry their time zone (federation/formats).
FORMAT_MODULE_PATH = ["federation.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
LOGIN_URL = "/admin/login/"
# Messages live in the session, not in a cookie: the admin shows a new API token once in one.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# Behind HTTPS (as every real deployment is): secure cookies, HSTS, plain HTTP redirected.
# `manage.py check --deploy` passes with these (README, "Running a hub", says why W021 is silenced).
if env_bool("CONCORDAT_HTTPS", False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("CONCORDAT_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("CONCORDAT_HSTS_PRELOAD", False)
    SECURE_SSL_REDIRECT = env_bool("CONCORDAT_SSL_REDIRECT", True)
    # The API is never redirected (a followed 301 turns a POST into a GET): plain-HTTP API
    # requests get a JSON 403 https_required from federation.api.middleware instead.
    # Nor are the monitoring endpoints: a load balancer's health check and a scraper on the
    # private network call the web process directly over plain HTTP (docs/operations.md).
    SECURE_REDIRECT_EXEMPT = [r"^api/", r"^health/", r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a promise made for a whole domain at hstspreload.org by its owner, not a
        # setting a hub on one host name can decide; the operator opts in with the variable.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Bulk submissions carry up to 10,000 signed contributions (about 6 MB of JSON).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("CONCORDAT_MAX_BODY_BYTES", 8 * 1024 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "members.authentication.ApiCredentialAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["members.permissions.IsAuthenticatedPrincipal"],
    "DEFAULT_PARSER_CLASSES": ["federation.api.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "federation.api.schema.ConcordatAutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "federation.api.pagination.StandardCursorPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "federation.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": env_str("CONCORDAT_RATE_LIMIT", "6000/minute")},
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Concordat hub API",
    "DESCRIPTION": (
        "Signed hash sharing between member organisations and federated hubs. "
        'Errors always have the shape {"error": {"code", "message", "details"}}.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its pages are public and the same for everyone: they read no credential, so
    # a token they do not know (a peer hub's cp_… token, an expired one) does not make them 401.
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "federation.api.schema.tag_postprocess",
    ],
    "ENUM_NAME_OVERRIDES": {"SignalTypeEnum": "federation.contributions.models.SignalType"},
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: Redis (or RabbitMQ) in production and tests; the demo uses a serverless transport.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/1")
# Each hub on a shared broker has its own queue (several hubs run on one machine in tests and the demo).
CELERY_TASK_DEFAULT_QUEUE = env_str("CONCORDAT_CELERY_QUEUE", "concordat")
# Every task by name on that queue, or the incident lane's beside it (federation/enqueue.py).
CELERY_TASK_ROUTES = task_routes(CELERY_TASK_DEFAULT_QUEUE)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Celery's Django fixup closes every database connection before and after each task unless
# DB_REUSE_MAX is set, so each drain and sequencing task would start a PostgreSQL session (a
# backend fork, cold catalogue caches, no prepared statements). Workers keep their connections
# as web workers do instead: settings.celery applies Django's CONN_MAX_AGE and health rules
# (close_old_connections) around each task, and this count never comes into play.
CELERY_DB_REUSE_MAX = 1_000_000_000
CELERY_BEAT_SCHEDULE = {
    "sequence-audit-log": {
        "task": TaskName.SEQUENCE_AUDIT_LOG,
        "schedule": float(env_int("CONCORDAT_SEQUENCE_INTERVAL_SECONDS", 5)),
    },
    # The sync stream's safety net: commits nudge the sequencer; this catches a lost nudge.
    "sequence-sync-changes": {
        "task": TaskName.SYNC_SEQUENCE_CHANGES,
        "schedule": float(env_int("CONCORDAT_SYNC_SEQUENCE_INTERVAL_SECONDS", 5)),
    },
    # Witnesses that missed a checkpoint (down, slow) are asked again for the latest one.
    "collect-cosignatures": {
        "task": TaskName.COLLECT_COSIGNATURES,
        "schedule": float(env_int("CONCORDAT_WITNESS_INTERVAL_SECONDS", 60)),
    },
    "compact-sync-changes": {
        "task": TaskName.SYNC_COMPACT_CHANGES,
        "schedule": float(env_int("CONCORDAT_SYNC_COMPACT_INTERVAL_SECONDS", 3600)),
    },
}

# The hub's identity. HUB_ID names this hub in signed objects and checkpoints (the checkpoint
# origin line); HUB_KEY_PATH is a PEM (PKCS#8) Ed25519 private key made by `manage.py hub_keygen`.
HUB_ID = env_str("CONCORDAT_HUB_ID", "concordat.localhost")
HUB_KEY_PATH = env_str("CONCORDAT_HUB_KEY_PATH", str(BASE_DIR / "var" / "hub-key.pem"))

# Witnessing (docs/transparency.md, "Witnesses"). The hub cosigns its peers' checkpoints with a
# key of its own, not the hub key (C2SP signed-note: one key per signature type), made by
# `manage.py hub_keygen` beside the hub key; WITNESS_NAME is its signed-note key name.
WITNESS_KEY_PATH = env_str(
    "CONCORDAT_WITNESS_KEY_PATH", str(Path(HUB_KEY_PATH).with_name("witness-key.pem"))
)
WITNESS_NAME = env_str("CONCORDAT_WITNESS_NAME", f"{HUB_ID}/witness")
# Asking this hub's witnesses to cosign: the HTTP timeout per request, and how often a failed
# request is retried (with exponential backoff from WITNESS_RETRY_SECONDS) before the periodic
# run (every WITNESS_INTERVAL_SECONDS) tries again.
WITNESS_TIMEOUT_SECONDS = env_int("CONCORDAT_WITNESS_TIMEOUT_SECONDS", 10)
WITNESS_MAX_RETRIES = env_int("CONCORDAT_WITNESS_MAX_RETRIES", 4)
WITNESS_RETRY_SECONDS = env_int("CONCORDAT_WITNESS_RETRY_SECONDS", 2)
WITNESS_INTERVAL_SECONDS = env_int("CONCORDAT_WITNESS_INTERVAL_SECONDS", 60)

# Private lookup (docs/private-lookup.md). LOOKUP_KEY_PATH holds the hub's OPRF key (ristretto255
# scalar, JSON, mode 0600), made and rotated by `manage.py lookup_key`. Each credential may have at
# most LOOKUP_DAILY_EVALUATIONS blinded elements evaluated per UTC day (a lookup-only credential
# may carry its own limit), LOOKUP_BATCH_MAX per request. The table publishes the first
# LOOKUP_TAG_BYTES bytes of each PRF output; beat brings it up to date with the change stream
# every LOOKUP_REFRESH_SECONDS and audits the previous days' usage every LOOKUP_USAGE_SECONDS.
LOOKUP_KEY_PATH = env_str(
    "CONCORDAT_LOOKUP_KEY_PATH", str(Path(HUB_KEY_PATH).with_name("lookup-key.json"))
)
LOOKUP_DAILY_EVALUATIONS = env_int("CONCORDAT_LOOKUP_DAILY_EVALUATIONS", 20_000)
LOOKUP_BATCH_MAX = env_int("CONCORDAT_LOOKUP_BATCH_MAX", 1_000)
LOOKUP_TAG_BYTES = 8
LOOKUP_CHANGES_PAGE = env_int("CONCORDAT_LOOKUP_CHANGES_PAGE", 10_000)
CELERY_BEAT_SCHEDULE["lookup-table-refresh"] = {
    "task": TaskName.LOOKUP_TABLE_REFRESH,
    "schedule": float(env_int("CONCORDAT_LOOKUP_REFRESH_SECONDS", 5)),
}
CELERY_BEAT_SCHEDULE["lookup-usage-audit"] = {
    "task": TaskName.LOOKUP_USAGE_AUDIT,
    "schedule": float(env_int("CONCORDAT_LOOKUP_USAGE_SECONDS", 3600)),
}

# Live-stream sessions (docs/video.md, "Live streams"): beat closes the sessions idle past the
# limit (federation.live.services.IDLE_SECONDS), with their audit event, on the default queue.
CELERY_BEAT_SCHEDULE["live-expire-idle-sessions"] = {
    "task": TaskName.LIVE_EXPIRE_IDLE_SESSIONS,
    "schedule": float(env_int("CONCORDAT_LIVE_SWEEP_INTERVAL_SECONDS", 60)),
}

# Contribution rules (docs/signing.md).
CONTRIBUTION_CLOCK_SKEW_SECONDS = env_int("CONCORDAT_CLOCK_SKEW_SECONDS", 300)
CONTRIBUTION_MAX_AGE_SECONDS = env_int("CONCORDAT_MAX_AGE_SECONDS", 7 * 24 * 3600)
BULK_MAX_ITEMS = env_int("CONCORDAT_BULK_MAX_ITEMS", 10_000)
# Bulk checks verify Ed25519 signatures in worker processes of their own (one per core, started
# on first use by each web or Celery process: federation/signature_processes.py); off, on threads.
SIGNATURE_VERIFY_PROCESSES = env_bool("CONCORDAT_VERIFY_PROCESSES", True)

# Transparency log: readable without credentials when public.
TRANSPARENCY_LOG_PUBLIC = env_bool("CONCORDAT_LOG_PUBLIC", False)
TRANSPARENCY_SEQUENCE_BATCH = env_int("CONCORDAT_SEQUENCE_BATCH", 5_000)
# The log's health endpoint reports "stalled" once an event has waited this long for a leaf.
TRANSPARENCY_STALL_SECONDS = env_int("CONCORDAT_LOG_STALL_SECONDS", 300)

# Member sync (docs/sync.md): page sizes of the delta API, how long removals stay in the stream,
# the sequencer's batch and the export's gzip level.
SYNC_PAGE_SIZE = env_int("CONCORDAT_SYNC_PAGE_SIZE", 1_000)
SYNC_PAGE_SIZE_MAX = env_int("CONCORDAT_SYNC_PAGE_SIZE_MAX", 10_000)
SYNC_REMOVAL_RETENTION_DAYS = env_int("CONCORDAT_SYNC_REMOVAL_RETENTION_DAYS", 90)
SYNC_SEQUENCE_BATCH = env_int("CONCORDAT_SYNC_SEQUENCE_BATCH", 20_000)
SYNC_EXPORT_GZIP_LEVEL = env_int("CONCORDAT_SYNC_EXPORT_GZIP_LEVEL", 1)
# PostgreSQL connections that render export chunks at once, in the export's snapshot.
SYNC_EXPORT_READERS = env_int("CONCORDAT_SYNC_EXPORT_READERS", 2)

# Matching (docs/matching.md): signals per request, the default PDQ threshold, whether the
# queried values themselves go into the audit log, and how the index follows the change stream.
MATCH_MAX_SIGNALS = env_int("CONCORDAT_MATCH_MAX_SIGNALS", 1_000)
MATCH_DEFAULT_THRESHOLD = env_int("CONCORDAT_MATCH_DEFAULT_THRESHOLD", 31)
MATCH_AUDIT_VALUES = env_bool("CONCORDAT_MATCH_AUDIT_VALUES", False)
MATCH_FOLLOW = env_bool("CONCORDAT_MATCH_FOLLOW", True)
MATCH_POLL_SECONDS = float(env_int("CONCORDAT_MATCH_POLL_MILLISECONDS", 250)) / 1000

# Federation (docs/federation.md). Receiving: the hop limit on an item's path, the push body's
# bound (the smaller of this and CONCORDAT_MAX_BODY_BYTES holds), the request rate per peer, and
# the pull (anti-entropy) from each linked peer: how often, how many pages per run, the timeout.
FEDERATION_HOP_LIMIT = env_int("CONCORDAT_FEDERATION_HOP_LIMIT", 8)
FEDERATION_MAX_BODY_BYTES = env_int("CONCORDAT_FEDERATION_MAX_BODY_BYTES", 8 * 1024 * 1024)
FEDERATION_PEER_RATE = env_str("CONCORDAT_FEDERATION_PEER_RATE", "600/minute")
FEDERATION_PULL_INTERVAL_SECONDS = env_int("CONCORDAT_FEDERATION_PULL_INTERVAL_SECONDS", 60)
FEDERATION_PULL_MAX_PAGES = env_int("CONCORDAT_FEDERATION_PULL_MAX_PAGES", 20)
FEDERATION_PULL_TIMEOUT_SECONDS = env_int("CONCORDAT_FEDERATION_PULL_TIMEOUT_SECONDS", 30)
CELERY_BEAT_SCHEDULE["federation-pull"] = {
    "task": TaskName.FEDERATION_PULL_ALL,
    "schedule": float(FEDERATION_PULL_INTERVAL_SECONDS),
}
# Sending. The incident lane has its own queue, "<CELERY_TASK_DEFAULT_QUEUE>.incident"
# (CELERY_TASK_ROUTES), consumed by a worker of its own (docs/federation.md, "The two queues"),
# or by the one worker with both queues.
# Sending: items per batch (the wire's maximum is 500), attempts before a row is a dead letter,
# exponential backoff (base * 2 ** (attempts - 1), capped, times a jitter in [0.5, 1]), the lease
# of a claimed batch (a killed worker's rows come back after it), HTTP timeouts, and how many
# rounds one call of outbox_drain sends.
FEDERATION_BATCH_SIZE = min(env_int("CONCORDAT_FEDERATION_BATCH_SIZE", 500), 500)
FEDERATION_MAX_ATTEMPTS = env_int("CONCORDAT_FEDERATION_MAX_ATTEMPTS", 8)
FEDERATION_BACKOFF_BASE_SECONDS = (
    float(env_int("CONCORDAT_FEDERATION_BACKOFF_BASE_MS", 2000)) / 1000
)
FEDERATION_BACKOFF_MAX_SECONDS = float(env_int("CONCORDAT_FEDERATION_BACKOFF_MAX_SECONDS", 600))
FEDERATION_LEASE_SECONDS = float(env_int("CONCORDAT_FEDERATION_LEASE_SECONDS", 120))
FEDERATION_CONNECT_TIMEOUT_SECONDS = float(env_int("CONCORDAT_FEDERATION_CONNECT_TIMEOUT", 5))
FEDERATION_READ_TIMEOUT_SECONDS = float(env_int("CONCORDAT_FEDERATION_READ_TIMEOUT", 60))
# A drain sends rounds: up to FEDERATION_DRAIN_PARALLEL batches at once (items of one entry, or of
# one key, always in one batch and in order; the peer applies the batches in parallel). A drain
# task holds a worker slot while it sends, so with one busy normal lane per linked peer every
# slot can be taken: the incident queue has a worker of its own (docs/federation.md, "The two
# queues"), and a task hands its slot back after FEDERATION_DRAIN_TASK_SECONDS. Two, not more: the
# peer serves each batch in a web slot, and a round that takes every slot of the peer's (4 in
# the bench's hubs, 4 sync workers in docs/operations.md) leaves an incident batch queued behind
# whole ordinary batches there (docs/federation.md, "Measured").
FEDERATION_DRAIN_PARALLEL = max(1, env_int("CONCORDAT_FEDERATION_DRAIN_PARALLEL", 2))
# A push puts this hub's attestations of a batch under one signed root (docs/federation.md,
# "Attestations under one root") for a peer whose last answer said it takes them.
FEDERATION_ATTESTATION_ROOTS = env_bool("CONCORDAT_FEDERATION_ATTESTATION_ROOTS", True)
FEDERATION_DRAIN_ROUNDS = env_int("CONCORDAT_FEDERATION_DRAIN_ROUNDS", 1)
# A drain task goes on to the next round at once while rows are due (claimed and built while the
# round before is out), claiming rounds for up to this long; then a fresh task takes over, behind
# what else is queued. FEDERATION_DRAIN_ROUNDS: rounds per call of outbox_drain outside a task.
FEDERATION_DRAIN_TASK_SECONDS = env_int("CONCORDAT_FEDERATION_DRAIN_TASK_MS", 1000) / 1000
# The pull feed this hub serves: entries per page (default and bound).
FEDERATION_FEED_PAGE_SIZE = env_int("CONCORDAT_FEDERATION_FEED_PAGE_SIZE", 200)
FEDERATION_FEED_PAGE_SIZE_MAX = 500
# The outbox's safety net: commits nudge the drain; beat sweeps every linked peer anyway.
CELERY_BEAT_SCHEDULE["federation-drain-outbox"] = {
    "task": TaskName.DRAIN_OUTBOX_SWEEP,
    "schedule": float(env_int("CONCORDAT_FEDERATION_SWEEP_INTERVAL_SECONDS", 3)),
}

# Monitoring (docs/operations.md). /metrics answers a token with the `metrics` scope, or any
# client whose address (REMOTE_ADDR) is in one of these networks; the readiness probe's bound
# on the broker check; the time bound of each query the metrics run.
METRICS_ALLOWED_NETWORKS = env_networks("CONCORDAT_METRICS_ALLOWED_NETWORKS", [])
READINESS_TIMEOUT_SECONDS = float(env_int("CONCORDAT_READINESS_TIMEOUT_SECONDS", 2))
METRICS_STATEMENT_TIMEOUT_MS = env_int("CONCORDAT_METRICS_STATEMENT_TIMEOUT_MS", 5000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("CONCORDAT_LOG_LEVEL", "INFO")},
}
