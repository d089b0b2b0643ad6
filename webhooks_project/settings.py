"""Every setting of the service, each read from one environment variable with a safe default.

The README lists them all; nothing else in the code base reads ``os.environ``.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_bool(name: str, default: bool) -> bool:
    return _env(name, "1" if default else "0").strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _env_float(name: str, default: float) -> float:
    return float(_env(name, str(default)))


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _env(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in _env(name, default).split(",") if item.strip()]


def _database_from_url(url: str) -> dict:
    parts = urlparse(url)
    idle_ms = _env_int("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT", 30) * 1000
    jit = "on" if _env_bool("DATABASE_JIT", False) else "off"
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "webhooks",
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
        # Persistent connections: web requests and worker threads reuse them.
        "CONN_MAX_AGE": _env_int("DATABASE_CONN_MAX_AGE", 300),
        "CONN_HEALTH_CHECKS": True,
        # A session left idle inside a transaction (its host cut off between an UPDATE and its
        # COMMIT) holds row locks that SKIP LOCKED hides from every other worker: PostgreSQL
        # ends it after this many seconds, well before the rows' delivery lease would.
        # JIT off unless asked for: over the history's daily partitions the planner's cost of
        # a short query passes jit_above_cost, and compiling it takes ~0.5 s for a 1 ms query.
        "OPTIONS": {"options": f"-c idle_in_transaction_session_timeout={idle_ms} -c jit={jit}"},
    }


# --- Django core -------------------------------------------------------------------------

DEBUG = _env_bool("DJANGO_DEBUG", False)
# The fallback key is for local runs only; production sets DJANGO_SECRET_KEY.
SECRET_KEY = _env("DJANGO_SECRET_KEY", "insecure-local-development-key-change-me")
ALLOWED_HOSTS = _env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = _env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "webhooks",
    "events",
    "deliveries",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "webhooks_project.middleware.PayloadLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "webhooks_project.middleware.AdminContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "webhooks_project.urls"
WSGI_APPLICATION = "webhooks_project.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The project's own overrides of the admin's templates (its favicon), found before the admin's.
        "DIRS": [BASE_DIR / "webhooks_project" / "templates"],
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

DATABASE_URL = _env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/webhooks")
DATABASES = {"default": _database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves the admin's static files with DEBUG off; the finders let it work before
# collectstatic has run too (tests, first start).
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGIN_URL = "/ui/login"
# Sign-in (dashboard and admin) refuses an address and username pair after this many failures
# within the window (seconds), until the window has passed: guessing stays slow.
AUTHENTICATION_BACKENDS = ["webhooks.login_throttle.ThrottledModelBackend"]
LOGIN_FAILURE_LIMIT = _env_int("LOGIN_FAILURE_LIMIT", 10)
LOGIN_FAILURE_WINDOW = _env_int("LOGIN_FAILURE_WINDOW", 900)
# Failures at one account from every address: a guesser spread over many addresses. Higher than
# the pair's, since anyone can add to it; a lock-out it causes ends with the window.
LOGIN_ACCOUNT_FAILURE_LIMIT = _env_int("LOGIN_ACCOUNT_FAILURE_LIMIT", 50)
# Failures from one address over every account: password spraying (one guess at many accounts).
LOGIN_ADDRESS_FAILURE_LIMIT = _env_int("LOGIN_ADDRESS_FAILURE_LIMIT", 30)
# Reverse proxies in front of the web process that append to X-Forwarded-For: the client is the
# Nth address from its right. 0 (no proxy) uses REMOTE_ADDR; the header is then not trusted.
TRUSTED_PROXY_HOPS = _env_int("DJANGO_TRUSTED_PROXY_HOPS", 0)
# A proxy that terminates TLS says so in X-Forwarded-Proto, which it must set itself: only then
# does a request count as HTTPS (HSTS, secure redirects) behind it.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXY_HOPS > 0 else None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Behind HTTPS: cookies (session, CSRF, messages) are Secure, and browsers are told to use
# HTTPS only (HSTS) for DJANGO_HSTS_SECONDS, a year by default; HSTS is sent on HTTPS requests.
SECURE_COOKIES = _env_bool("DJANGO_SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SECURE_HSTS_SECONDS = _env_int("DJANGO_HSTS_SECONDS", 365 * 24 * 3600) if SECURE_COOKIES else 0
# Only when every subdomain serves HTTPS too: browsers then refuse plain HTTP to all of them.
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_COOKIES and _env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- REST API ----------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["webhooks.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["webhooks_project.parsers.BoundedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "webhooks_project.pagination.CursorPagination",
    "PAGE_SIZE": _env_int("API_PAGE_SIZE", 50),
    "EXCEPTION_HANDLER": "webhooks_project.errors.exception_handler",
    # Per API key, at API_THROTTLE_RATE; event ingest charges API_EVENTS_THROTTLE_RATE instead.
    "DEFAULT_THROTTLE_CLASSES": ["webhooks.throttling.ApiKeyRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "webhooks_project.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
# Deepest nesting of a JSON body, and of emit()'s data: real payloads are a few levels deep, and
# recursive code (parsers, encoders, receivers' too) stays far from Python's recursion limit.
JSON_MAX_DEPTH = _env_int("JSON_MAX_DEPTH", 64)
# Most values (objects, arrays, strings, numbers, ...) in one JSON body: the work a request costs
# grows with them, not with its bytes. A 1 MB payload of real records holds well under this.
JSON_MAX_VALUES = _env_int("JSON_MAX_VALUES", 100_000)
# Requests one API key may make ("<n>/<s|min|hour|day>", empty: no limit): one runaway client
# cannot take the web processes from every other. Event ingest is counted apart, in events.
API_THROTTLE_RATE = _env("API_THROTTLE_RATE", "1200/min")
# Events one API key may send over REST, a batch counting each of its events: well above the
# delivery limits' 100/s per organization, so only a producer stuck in a loop meets it.
API_EVENTS_THROTTLE_RATE = _env("API_EVENTS_THROTTLE_RATE", "6000/min")
SPECTACULAR_SETTINGS = {
    "TITLE": "CyberCage Webhooks API",
    "DESCRIPTION": "Configure webhook endpoints, emit events and read delivery history.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc assets are served from the installed sidecar package: the docs
    # page works without reaching a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"DeliveryStatusEnum": "deliveries.models.Delivery.Status"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "webhooks_project.openapi.document_event_types",
    ],
}

# --- Redis and Celery --------------------------------------------------------------------

REDIS_URL = _env("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = _env("CELERY_BROKER_URL", REDIS_URL)
# Unacknowledged messages older than this are redelivered by the Redis transport; no message
# may carry a countdown longer than this (longer waits are picked up from the database).
CELERY_VISIBILITY_TIMEOUT = _env_int("CELERY_VISIBILITY_TIMEOUT", 3600)
# Worker threads per worker process: each runs one endpoint's drain loop at a time.
CELERY_WORKER_CONCURRENCY = _env_int("CELERY_WORKER_CONCURRENCY", 16)
# A worker or beat that lost the broker tries again at least this often (seconds), however long
# the outage (kombu's default backs off to every 30 s): work resumes soon after it is back.
CELERY_BROKER_RECONNECT_MAX_INTERVAL = _env_float("CELERY_BROKER_RECONNECT_MAX_INTERVAL", 2.0)
# Django's cache is Redis too, so DRF's per-key throttle counts across every web process. A
# cache that does not answer within a second is treated as down (requests go on unthrottled).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "whk:cache",
        "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
    }
}

# --- Delivery ----------------------------------------------------------------------------

# Retry schedule after the first attempt, in seconds: 1 min, 5 min, 15 min, 1 h, 6 h.
WEBHOOK_RETRY_DELAYS = [int(x) for x in _env_list("WEBHOOK_RETRY_DELAYS", "60,300,900,3600,21600")]
# Total deadline of one attempt: connect, send and read, whatever the receiver does.
WEBHOOK_TIMEOUT = _env_float("WEBHOOK_TIMEOUT", 30.0)
# How much of a response is read, and how much of that is stored in the attempt log.
WEBHOOK_RESPONSE_READ_BYTES = _env_int("WEBHOOK_RESPONSE_READ_BYTES", 64 * 1024)
WEBHOOK_RESPONSE_STORE_BYTES = _env_int("WEBHOOK_RESPONSE_STORE_BYTES", 4 * 1024)
# Largest accepted request body (and so event payload): the document's 1 MB.
WEBHOOK_MAX_PAYLOAD_BYTES = _env_int("WEBHOOK_MAX_PAYLOAD_BYTES", 1_048_576)
# Most events in one emit_many() call or POST /ui/api/events/batch: one query string stores them
# all, so this bounds its size and how long its transaction holds the webhooks' share locks.
WEBHOOK_BATCH_MAX_EVENTS = _env_int("WEBHOOK_BATCH_MAX_EVENTS", 100)
# A delivery's page (dashboard, admin) shows at most this much of a longer body, with a link to
# all of it: a megabyte of JSON made a page millions of pixels wide and too heavy to draw.
WEBHOOK_PAYLOAD_PREVIEW_BYTES = _env_int("WEBHOOK_PAYLOAD_PREVIEW_BYTES", 64 * 1024)
# Per-organization delivery limits, as the document states them.
WEBHOOK_RATE_PER_SECOND = _env_int("WEBHOOK_RATE_PER_SECOND", 100)
WEBHOOK_RATE_PER_HOUR = _env_int("WEBHOOK_RATE_PER_HOUR", 10_000)
# How often beat looks in the database for due deliveries whose wake-up message was lost.
WEBHOOK_SWEEP_INTERVAL = _env_float("WEBHOOK_SWEEP_INTERVAL", 30.0)
# The wake after an emit's commit (the wake-pending flags in Redis, then the broker's publish)
# waits at most this long on any one connect, read or write, and is never retried inline: a
# producer never waits on an outage. A wake that fails is found by the sweeper.
WEBHOOK_WAKE_TIMEOUT = _env_float("WEBHOOK_WAKE_TIMEOUT", 0.05)
# After a wake fails, the process sends none for this long (a circuit breaker), so an outage
# costs one timeout per this many seconds instead of one per emit.
WEBHOOK_WAKE_BACKOFF = _env_float("WEBHOOK_WAKE_BACKOFF", 5.0)
# While an organization is throttled, its webhooks' wakes stay coalesced until the throttle
# ends, and at least this long: at most one broker message per webhook per this many seconds.
WEBHOOK_THROTTLED_WAKE_MIN = _env_float("WEBHOOK_THROTTLED_WAKE_MIN", 1.0)
# Coalescing under load: a drain whose oldest delivery had waited at least
# WEBHOOK_COALESCE_LATENESS seconds past its due time (the workers are behind) keeps its
# webhook's wake coalesced for WEBHOOK_COALESCE_SECONDS after it ends, and one countdown drains
# what arrived meanwhile: under load a busy webhook is drained in batches at most this often,
# instead of once per event or two. Not in force while deliveries are prompt; 0 turns it off.
WEBHOOK_COALESCE_LATENESS = _env_float("WEBHOOK_COALESCE_LATENESS", 0.05)
WEBHOOK_COALESCE_SECONDS = _env_float("WEBHOOK_COALESCE_SECONDS", 0.1)
# Attempts in flight at once towards one endpoint, cluster-wide: a hanging endpoint ties up
# at most this many worker threads.
WEBHOOK_ENDPOINT_CONCURRENCY = _env_int("WEBHOOK_ENDPOINT_CONCURRENCY", 4)
# Attempts in flight at once for one organization, cluster-wide, across all its endpoints: an
# organization with many hanging endpoints holds at most this many worker threads; the rest of
# its work waits (parked, holding no thread) while other organizations' work runs.
WEBHOOK_ORG_CONCURRENCY = _env_int("WEBHOOK_ORG_CONCURRENCY", 8)
# Most webhooks one organization may have (409 beyond): bounds what one tenant can fan out to.
WEBHOOK_MAX_PER_ORGANIZATION = _env_int("WEBHOOK_MAX_PER_ORGANIZATION", 50)
# Deliveries one drain step claims, sends over one keep-alive connection and records together.
WEBHOOK_BATCH_SIZE = _env_int("WEBHOOK_BATCH_SIZE", 50)
# A prepared pipeline statement's plan is remade when it is twice as old as at its last
# making (from 1 s), at most this long after: plans made while a day's partition was still
# small see it grown (deliveries/leases.py).
WEBHOOK_PLAN_MAX_AGE = _env_float("WEBHOOK_PLAN_MAX_AGE", 120.0)
# A drain task hands its thread back after this long so other endpoints get a turn.
WEBHOOK_DRAIN_SECONDS = _env_float("WEBHOOK_DRAIN_SECONDS", 10.0)
# Networks exempt from the refusal of non-public addresses (development and tests only).
WEBHOOK_ALLOWED_NETWORKS = [
    ipaddress.ip_network(net, strict=False) for net in _env_list("WEBHOOK_ALLOWED_NETWORKS", "")
]
WEBHOOK_HTTPS_ONLY = _env_bool("WEBHOOK_HTTPS_ONLY", False)
# Key for secrets at rest; when empty one is derived from SECRET_KEY.
WEBHOOK_ENCRYPTION_KEY = _env("WEBHOOK_ENCRYPTION_KEY", "")
# After a rotation the previous secret keeps signing X-CyberCage-Signature (and webhook-signature
# beside the new one) this long, unless the rotation says otherwise: receivers have time to move.
WEBHOOK_SECRET_OVERLAP = _env_int("WEBHOOK_SECRET_OVERLAP", 24 * 3600)
# Whether emit() (every door in) refuses event data that breaks its type's JSON Schema, built
# from the catalogue ("enforce"), or lets it through unchecked ("off": for a producer that
# cannot be fixed at once, so its events keep flowing meanwhile).
WEBHOOK_EVENT_VALIDATION = _env_choice("WEBHOOK_EVENT_VALIDATION", "enforce", ("enforce", "off"))
# A webhook's payload filter (webhooks.filters) is evaluated for every event its organization
# emits, inside emit()'s one statement: its nesting of $and/$or/$not and its size (compact JSON
# bytes) are bounded, so no filter makes emit slow. Real filters are a few conditions deep.
WEBHOOK_FILTER_MAX_DEPTH = _env_int("WEBHOOK_FILTER_MAX_DEPTH", 5)
WEBHOOK_FILTER_MAX_BYTES = _env_int("WEBHOOK_FILTER_MAX_BYTES", 4096)
# A repeated Idempotency-Key within this window returns the original event.
WEBHOOK_IDEMPOTENCY_WINDOW = _env_int("WEBHOOK_IDEMPOTENCY_WINDOW", 24 * 3600)
# A webhook whose deliveries have all failed this long is disabled (as Svix does).
WEBHOOK_DISABLE_AFTER_DAYS = _env_int("WEBHOOK_DISABLE_AFTER_DAYS", 5)
# Events, deliveries and attempts older than this are dropped by beat, a day's partition at a
# time (deliveries/partitions.py).
WEBHOOK_RETENTION_DAYS = _env_int("WEBHOOK_RETENTION_DAYS", 30)
# Daily partitions of the history made ahead of today (at migrate and hourly by beat): beat
# may stop this many days before a row lands in the default partition.
WEBHOOK_PARTITION_PREMAKE_DAYS = _env_int("WEBHOOK_PARTITION_PREMAKE_DAYS", 4)
# How long dropping an expired partition waits for its table lock (ms) before giving up until
# the next run: a long read must never queue every insert behind the drop.
WEBHOOK_PARTITION_LOCK_TIMEOUT = _env_int("WEBHOOK_PARTITION_LOCK_TIMEOUT", 2000)
WEBHOOK_USER_AGENT = _env("WEBHOOK_USER_AGENT", "CyberCage-Webhooks/1.0")
# /healthz answers 503 when a due delivery has waited longer than this many seconds: the
# workers are down or cannot keep up.
WEBHOOK_HEALTH_MAX_LAG = _env_int("WEBHOOK_HEALTH_MAX_LAG", 300)
# Bearer token /metrics requires. Without one /metrics is closed (403 saying how to open it)
# unless METRICS_PUBLIC is on: delivery volumes and endpoint counts are not for everyone.
METRICS_TOKEN = _env("METRICS_TOKEN", "")
METRICS_PUBLIC = _env_bool("METRICS_PUBLIC", False)

# Bodies without a Content-Length are capped while read, too (413 as well).
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_PAYLOAD_BYTES

# --- Logging -----------------------------------------------------------------------------

LOG_LEVEL = _env("LOG_LEVEL", "INFO")
LOG_FORMAT = _env("LOG_FORMAT", "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "webhooks_project.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Celery logs two lines per task at INFO; with thousands of tasks a second that is noise.
    "loggers": {
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
    },
}

# --- Celery (read by webhooks_project/celery.py through the CELERY_ namespace) ------------

CELERY_TASK_DEFAULT_QUEUE = "webhooks"
CELERY_TASK_IGNORE_RESULT = True
# A task is acknowledged only after it finished, and given back if its worker dies: a killed
# worker's messages are redelivered. The database decides whether anything is left to do.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message reserved per thread: a busy worker does not sit on messages others could run.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_POOL = "threads"
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Keep database connections across tasks (Celery closes them around every task otherwise);
# stale ones are closed by a task_prerun hook in webhooks_project/celery.py.
CELERY_DB_REUSE_MAX = 1_000_000
# Where beat keeps its schedule's state (last run times) between restarts.
CELERY_BEAT_SCHEDULE_FILENAME = _env("CELERY_BEAT_SCHEDULE_FILE", "/tmp/webhooks-celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "sweep": {"task": "deliveries.sweep", "schedule": WEBHOOK_SWEEP_INTERVAL},
    "maintain": {"task": "deliveries.maintain", "schedule": 3600.0},
    # The history's daily partitions: days ahead made, days past retention dropped.
    "partitions": {"task": "deliveries.partitions", "schedule": 3600.0},
}
