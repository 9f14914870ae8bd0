"""The only settings module. Every knob comes from the environment (see `.env.example`).

Defaults make `make run` work on a fresh clone with nothing but Python: SQLite, local-memory
cache, console email and Celery on kombu's filesystem transport, all under the data dir.
With `DEBUG=False` the module refuses to load half-configured (see "Production guard").
"""

import os
import secrets
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# --- Data dir: everything the dev server writes lives here (gitignored) -----------------------
# Only paths here: importing settings creates nothing. The folders are made where they are
# needed (clawtrace_site/localdirs.py: `manage.py ensure_local_dirs` in `make setup`, the
# Celery app for its broker and results, the dev secret key below).
DATA_DIR = Path(env.str("CLAWTRACE_DATA_DIR", default=str(BASE_DIR / ".data"))).resolve()
BROKER_DIR = DATA_DIR / "broker"

# --- Core -------------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)


def _dev_secret_key() -> str:
    # Generated once and kept, so sessions survive restarts of `make run`; never used when
    # DEBUG is off (production must pass SECRET_KEY explicitly).
    # Web, worker and beat may start together on a fresh clone: the key is written to a private
    # temporary file and hard-linked into place, which is atomic and fails if another process
    # won, so every process ends up reading the same complete key.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = DATA_DIR / f".secret_key.{os.getpid()}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(64))
        try:
            os.link(temporary, key_file)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return key_file.read_text().strip()


# --- Production guard: refuse to start half-configured ------------------------------------------
if not DEBUG:
    _missing = [
        name
        for name in ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL")
        if not env(name, default="")
    ]
    if _missing:
        raise ImproperlyConfigured(
            f"DEBUG is off but {', '.join(_missing)} {'is' if len(_missing) == 1 else 'are'} not "
            "set; production needs every one of them (see .env.example)."
        )
    SECRET_KEY = env.str("SECRET_KEY")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="") or _dev_secret_key()

# --- Applications -----------------------------------------------------------------------------
INSTALLED_APPS = [
    "clawtrace_site",  # its management commands and system checks
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "accounts",
    "devices",
    "ingest",
    "analytics",
    "billing",
    "alerts",
    "retention",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "clawtrace_site.urls"
WSGI_APPLICATION = "clawtrace_site.wsgi.application"
ASGI_APPLICATION = "clawtrace_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.organizations",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False  # services own their transactions (style.md 2)
# Keep connections between requests (a new PostgreSQL connection per request costs more than
# most of our queries); the health check drops one the server closed meanwhile.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0 if DEBUG else 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: rate limits (allauth) live here; use a shared cache (CACHE_URL) with several
# processes, otherwise each process counts on its own.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://clawtrace")}

# --- Users and authentication -----------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"

# --- allauth: email login, mandatory verification, MFA ----------------------------------------
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[ClawTrace] "
# allauth's defaults are on already; named here so a reviewer sees them and can tune them.
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/300s/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
}
# Client addresses for those limits and the API throttles: X-Forwarded-For can be forged, so only
# the entries added by our own proxies count. Production runs behind one TLS-terminating proxy
# (see Security); with 0, REMOTE_ADDR is used and the header ignored.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0 if DEBUG else 1)
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "ClawTrace"

# --- Email ------------------------------------------------------------------------------------
if env.str("EMAIL_URL", default=""):
    globals().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = env.str(
        "EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend"
    )
DEFAULT_FROM_EMAIL = env.str(
    "DEFAULT_FROM_EMAIL", default="ClawTrace <noreply@clawtrace.localhost>"
)
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Where links in mail sent by workers point (no request to build them from): alerts, retention
# warnings.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# --- Internationalisation and time ------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files (whitenoise) ----------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# STATIC_ROOT is made by collectstatic (`make setup`, the deploy), not here.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security (production hardening only bites with DEBUG off) --------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# CSRF failures under /api/ answer the JSON error shape like every other API error.
CSRF_FAILURE_VIEW = "clawtrace_site.api.csrf_failure"
# The largest legal request is an ingest batch of 1,000,000 bytes (uncompressed JSON); 2.5 MB
# leaves room for the envelope and escaping while still refusing a runaway body before it is
# read into memory. DRF honours it from 3.17.2 on (pinned above that); over it, the API answers
# 413 in the error shape and forms a 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_500_000
if not DEBUG:
    # TLS terminates at the proxy, which sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Load balancers probe the app directly over plain HTTP: a redirect would mark it down.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # The __Secure- prefix makes browsers refuse these cookies over plain HTTP.
    SESSION_COOKIE_NAME = "__Secure-sessionid"
    CSRF_COOKIE_NAME = "__Secure-csrftoken"
    CSRF_TRUSTED_ORIGINS = env.list(
        "CSRF_TRUSTED_ORIGINS", default=[f"https://{host}" for host in ALLOWED_HOSTS if host != "*"]
    )

# --- Django REST framework --------------------------------------------------------------------
_renderers = ["rest_framework.renderers.JSONRenderer"]
if DEBUG:
    _renderers.append("rest_framework.renderers.BrowsableAPIRenderer")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": _renderers,
    "DEFAULT_PARSER_CLASSES": ["clawtrace_site.parsers.JSONParser"],  # deep nesting -> 400
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "clawtrace_site.api.exception_handler",
    # Load control, not security (credentials are protected by hashing and allauth's limits).
    # Every API view counts per user, or per IP address when anonymous; the sender API uses
    # `ScopedRateThrottle` with `throttle_scope = "device"` instead. Counted in the cache, so
    # production needs a shared one (CACHE_URL; `check --deploy` warns otherwise).
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="60/min"),
        "user": env.str("API_THROTTLE_USER", default="600/min"),
        # Per device (never per address: devices/authentication.py). A first sync of a long
        # history is a thousand batches of 1,000 turns sent back to back; 1,800/min lets it
        # finish in about a minute, and still stops one device from taking every worker.
        "device": env.str("API_THROTTLE_DEVICE", default="1800/min"),
        # Per organization API key (scripts, the menu bar app polling every few seconds).
        "org_api": env.str("API_THROTTLE_ORG_API", default="600/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ClawTrace API",
    "DESCRIPTION": "Organizations, members and (from v1 on) the sender API of the ClawTrace agent.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "clawtrace_site.schema.error_responses_postprocess",
    ],
}

# --- Celery -----------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
if not REDIS_URL:
    # kombu's filesystem transport: a real worker and beat without any server. Producer and
    # consumer must share one folder, hence in == out.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "in"),
        "data_folder_out": str(BROKER_DIR / "in"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = REDIS_URL or f"file://{DATA_DIR / 'results'}"
CELERY_RESULT_EXPIRES = 60 * 60 * 24
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_SOFT_TIME_LIMIT = 60 * 4
CELERY_TASK_TIME_LIMIT = 60 * 5
# Every task is written to be safe to run twice (style.md 7), so a task is acknowledged only
# once it finished and is redelivered if the worker dies mid-way.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = env.str(
    "CELERY_BEAT_SCHEDULE_FILENAME", default=str(DATA_DIR / "celerybeat-schedule")
)
CELERY_BEAT_SCHEDULE = {
    # A heartbeat through broker and worker every ten minutes: its "pong" in the worker log
    # shows beat and worker are alive; cheap, and stale copies are pointless, hence the expiry.
    "ping": {
        "task": "ping",
        "schedule": crontab(minute="*/10"),
        "options": {"expires": 60 * 9},
    },
    # Rollups follow each ingest batch on their own (debounced); this catches what that missed:
    # buckets still queued a minute after they were marked (a lost task, a broker that was
    # down) and organizations whose daily rollups are in a zone they no longer use. Cheap when
    # there is nothing to do (two small queries), so every five minutes.
    "rollups_sweep": {
        "task": "analytics.tasks.rollups_sweep_task",
        "schedule": crontab(minute="*/5"),
        "options": {"expires": 60 * 4},
    },
    # Anomalies per organization with recent usage: the windows are local hours and days, so
    # every five minutes finds an hourly burn while the hour still runs; a stale copy would only
    # repeat the next one's work, hence the expiry.
    "anomalies_detect_all": {
        "task": "analytics.tasks.anomalies_detect_all_task",
        "schedule": crontab(minute="2-59/5"),
        "options": {"expires": 60 * 4},
    },
    # Expired invitations are useless and carry email addresses: drop them daily, off the hour
    # so we do not pile onto everyone's midnight jobs. A missed day is harmless (expires in 12h).
    "invitation_expired_purge": {
        "task": "accounts.tasks.invitation_expired_purge_task",
        "schedule": crontab(hour=3, minute=17),
        "options": {"expires": 60 * 60 * 12},
    },
    # The events table's monthly partitions (PostgreSQL), made three months ahead: daily, so
    # that a few missed runs still leave months in hand; a no-op when they exist and on SQLite.
    # Expires before the next run: two days' copies queued after an outage do the same thing.
    "event_partitions_ensure": {
        "task": "ingest.tasks.event_partitions_ensure_task",
        "schedule": crontab(hour=2, minute=41),
        "options": {"expires": 60 * 60 * 20},
    },
    # Retention nightly: history is kept in whole days, so once a day is enough, and a plan
    # change takes effect by the next morning. At 02:43 UTC, the quietest hour of the ingest
    # graphs and off the hour; a run that misses its night is harmless (the next one deletes
    # a day more), hence a long expiry.
    "retention_nightly": {
        "task": "retention.tasks.retention_nightly_task",
        "schedule": crontab(hour=2, minute=43),
        "options": {"expires": 60 * 60 * 12},
    },
    # Stripe is the source of truth: each hour the last week's completed Checkout Sessions are
    # compared with the payments recorded, so a webhook that never arrived costs a paying
    # organization an hour at most. A no-op with billing off. Off the hour; a copy queued
    # behind an outage repeats the next run's work, hence expiring before it.
    "payments_reconcile": {
        "task": "billing.tasks.payments_reconcile_task",
        "schedule": crontab(minute=23),
        "options": {"expires": 60 * 50},
    },
    # Alert rules against what detection just found and the spend so far: two minutes after
    # each anomalies run (which takes seconds), so an anomaly is alerted within minutes of its
    # detection and a spend threshold within five of being crossed. A run fires each window
    # once, so a stale copy only repeats the next one's work, hence the expiry.
    "alerts_evaluate_all": {
        "task": "alerts.tasks.alerts_evaluate_all_task",
        "schedule": crontab(minute="4-59/5"),
        "options": {"expires": 60 * 4},
    },
    # Deliveries whose task was lost (the broker was down when the alert fired) are enqueued
    # again: every ten minutes, so a lost alert is late by minutes, not lost; it reads one
    # small partial index, so the cadence costs nothing.
    "alert_deliveries_requeue_stale": {
        "task": "alerts.tasks.alert_deliveries_requeue_stale_task",
        "schedule": crontab(minute="7-59/10"),
        "options": {"expires": 60 * 9},
    },
}

# --- Alerts ---------------------------------------------------------------------------------------
# Webhook calls leave from the workers; short timeouts keep a dead endpoint from tying a worker
# up (the delivery is retried later instead).
ALERT_WEBHOOK_CONNECT_TIMEOUT_SECONDS = env.float(
    "ALERT_WEBHOOK_CONNECT_TIMEOUT_SECONDS", default=3.0
)
ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("ALERT_WEBHOOK_TIMEOUT_SECONDS", default=5.0)
# Plain-http webhooks to loopback addresses: for DEBUG and the tests' local servers only.
ALERT_WEBHOOK_ALLOW_LOOPBACK_HTTP = env.bool("ALERT_WEBHOOK_ALLOW_LOOPBACK_HTTP", default=DEBUG)
# A self-hosted site may post to its own network; the hosted one never does (SSRF).
ALERT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool(
    "ALERT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=False
)
# Retries of a failed delivery: 30 s, 1, 2, 4, 8, 15, 15, 15 min (each with full jitter), so a
# webhook that is down for about an hour still gets the alert.
ALERT_DELIVERY_RETRY_BACKOFF_SECONDS = env.int("ALERT_DELIVERY_RETRY_BACKOFF_SECONDS", default=30)
ALERT_DELIVERY_RETRY_BACKOFF_MAX_SECONDS = env.int(
    "ALERT_DELIVERY_RETRY_BACKOFF_MAX_SECONDS", default=900
)
ALERT_DELIVERY_MAX_RETRIES = env.int("ALERT_DELIVERY_MAX_RETRIES", default=8)
# An unfinished delivery untouched for this long lost its task (broker down at enqueue time);
# the sweep enqueues it again. Longer than the longest backoff plus a send.
ALERT_DELIVERY_STALE_AFTER_SECONDS = env.int("ALERT_DELIVERY_STALE_AFTER_SECONDS", default=1800)

# --- Retention ------------------------------------------------------------------------------------
# Rows per DELETE: a few milliseconds of locks each, and ingest of the same organization waits
# at most that long (both take the organization's row lock).
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=2_000)
# Batches per task run (100,000 rows at the defaults: well inside the task time limits), and
# how many runs one organization's night may chain before it stops and says so in the log.
RETENTION_BATCHES_PER_RUN = env.int("RETENTION_BATCHES_PER_RUN", default=50)
RETENTION_MAX_RUNS = env.int("RETENTION_MAX_RUNS", default=100)
# After a downgrade, the owners are warned and the shorter retention applies this many days
# later (nothing is deleted at once).
RETENTION_DOWNGRADE_GRACE_DAYS = env.int("RETENTION_DOWNGRADE_GRACE_DAYS", default=3)

# --- Billing (Stripe) -----------------------------------------------------------------------------
# Billing is on only when a secret key is configured. Without one (self-hosting, `make run`),
# every organization has the largest plan's limits and the billing page says billing is off.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
BILLING_ENABLED = bool(STRIPE_SECRET_KEY)
# Verifies the `Stripe-Signature` header of webhook deliveries (whsec_...).
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# The one-time Prices a Checkout Session charges, per plan: an operator changes a price in
# Stripe and here, without a deploy.
STRIPE_PRICE_PRO = env.str("STRIPE_PRICE_PRO", default="")
STRIPE_PRICE_TEAM = env.str("STRIPE_PRICE_TEAM", default="")
# Where stripe-python sends its requests; tests point it at a local fake, never the internet.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")

# --- Logging ----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
