"""Settings for the eBR/QMS: one module, every value from the environment (see ebr/config.py).

The README's configuration table lists each variable; a bad value stops start-up with a
message naming it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from celery.schedules import crontab

from ebr.config import (
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_patient_ref_format,
    env_postgres_url,
    env_redis_url,
    env_secret_key,
    env_str,
    env_time_zone,
)

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_DIR = Path(env_str("EBR_LOCAL_DIR", str(BASE_DIR / ".local")))

DJANGO_ENV = env_choice("DJANGO_ENV", ("development", "production"), "development")
PRODUCTION = DJANGO_ENV == "production"
DEBUG = env_bool("DJANGO_DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("DJANGO_DEBUG cannot be on when DJANGO_ENV=production")

SECRET_KEY = env_secret_key("SECRET_KEY", production=PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver")
if PRODUCTION and not ALLOWED_HOSTS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("ALLOWED_HOSTS must list the facility's host names in production")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# Facility identity: used in batch numbers, PDFs and the page header.
FACILITY_NAME = env_str("FACILITY_NAME", "Demo Hospital ATMP Unit")
FACILITY_SITE_CODE = env_str("FACILITY_SITE_CODE", "B")
# Chain of identity: the facility's pseudonymised patient reference format, and the hospitals
# that send starting material (a closed list, so free text cannot carry a patient's name).
PATIENT_REF_EXAMPLE = env_str("PATIENT_REF_EXAMPLE", "PT-4821")
PATIENT_REF_DESCRIPTION = env_str("PATIENT_REF_DESCRIPTION", "PT- followed by 2 to 10 digits")
PATIENT_REF_FORMAT = env_patient_ref_format("PATIENT_REF_FORMAT", r"PT-\d{2,10}", example=PATIENT_REF_EXAMPLE)
COLLECTING_HOSPITALS = env_list(
    "COLLECTING_HOSPITALS", "City Hospital;University Hospital Haematology, Apheresis unit;"
    "Regional Cancer Centre, Cell Therapy unit", separator=";")
if not COLLECTING_HOSPITALS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("COLLECTING_HOSPITALS must name at least one hospital (separated by ';')")

INSTALLED_APPS = [
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
    "drf_spectacular_sidecar",
    "simple_history",
    "pgtrigger",
    "django_htmx",
    "axes",
    "qms",
    "ebr",
    "nlp_review",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "qms.middleware.NulPathMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "qms.middleware.IdleTimeoutMiddleware",
    "qms.middleware.LockedAccountMiddleware",
    "qms.middleware.InitialPasswordMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "qms.middleware.ContentSecurityPolicyMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, so that a lockout answer is given after authentication ran.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "ebr.urls"
WSGI_APPLICATION = "ebr.wsgi.application"
ASGI_APPLICATION = "ebr.asgi.application"

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
                "qms.context_processors.navigation",
            ],
        },
    },
]

# PostgreSQL only. `python -m ebr.localservices` provides DATABASE_URL when none is set.
DATABASES = {"default": env_postgres_url("DATABASE_URL")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME", f"test_{DATABASES['default']['NAME']}")}
# A second connection to the same database, in autocommit, for security records that must
# outlive a rolled-back business transaction: failed logins, lockouts, refused signatures.
DATABASES["security"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}
DATABASE_ROUTERS = ["qms.routers.SecurityRecordsRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_redis_url("REDIS_URL")

AUTH_USER_MODEL = "qms.User"
AUTHENTICATION_BACKENDS = [
    # Counts failures and locks accounts (21 CFR 11.300(d)); must come first.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
     "OPTIONS": {"user_attributes": ("username", "full_name", "email")}},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # The similarity ratio above lets the username typed twice through; this refuses it.
    {"NAME": "qms.passwords.ContainsUserAttributeValidator",
     "OPTIONS": {"user_attributes": ("username", "full_name"), "min_length": 4}},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Lockout: five failed attempts lock the account until an administrator unlocks it.
AXES_FAILURE_LIMIT = 5
# A password an administrator set (a new account, a reset) opens the account for this long only: the
# administrator knows it until the holder has chosen their own (qms.services.users).
TEMPORARY_PASSWORD_HOURS = env_int("TEMPORARY_PASSWORD_HOURS", 72, minimum=1, maximum=720)
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_COOLOFF_TIME = None
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked.html"
AXES_VERBOSE = False
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# Behind nginx the client address is in X-Forwarded-For; count the trusted proxies in front.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=5)
AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if TRUSTED_PROXY_COUNT else ("REMOTE_ADDR",))

# Sessions: idle timeout (EU GMP Annex 11 §12, 21 CFR 11.10(d)); the browser session ends with it.
SESSION_IDLE_TIMEOUT = timedelta(minutes=env_int("SESSION_IDLE_TIMEOUT", 15, minimum=1, maximum=480))
SESSION_COOKIE_AGE = int(SESSION_IDLE_TIMEOUT.total_seconds()) + 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=3600, maximum=63072000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # /healthz is probed over plain HTTP by load balancers inside the private network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

LANGUAGE_CODE = "en-gb"
USE_I18N = False
USE_TZ = True  # stored in UTC, shown in the facility's zone
TIME_ZONE = env_time_zone("TIME_ZONE", "Europe/Paris")

STATIC_URL = "/static/"
STATIC_ROOT = LOCAL_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = not PRODUCTION  # development serves static/ directly, no collectstatic
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(LOCAL_DIR / "media")}},
    "staticfiles": {"BACKEND": (
        "whitenoise.storage.CompressedManifestStaticFilesStorage" if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage")},
}

EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "ebr@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
# Who receives system alerts (a broken audit chain): "Name <mail>, Name <mail>" or plain addresses.
ADMINS = [("", address) for address in env_list("ADMINS_EMAILS", "")]

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "ebr.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "eBR / QMS API",
    "DESCRIPTION": "Electronic batch record and quality system for ATMP manufacturing.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema is the instrument API's published contract: readable without a login (it holds
    # no data). The browsable docs at /api/docs/ need a login like every other page.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "ebr.api.schema.request_bodies_closed"],
}

# Celery: at-least-once delivery. A task is acknowledged only after it finished, and a task
# whose worker died (SIGKILL, OOM) is re-queued instead of silently acknowledged.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 600
CELERY_TASK_TIME_LIMIT = 900
# Longer than the hard time limit, so that Redis never re-delivers a task still running.
# A task delivered to a worker that dies whole (kill -9, host lost) is re-delivered after this
# many seconds; a worker whose pool process dies re-queues at once (acks_late + reject_on_worker_lost).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int(
    "CELERY_VISIBILITY_TIMEOUT", 3600, minimum=CELERY_TASK_TIME_LIMIT + 60, maximum=86400)}
CELERY_RESULT_EXPIRES = 86400
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "ebr")
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "outbox-sweep": {"task": "qms.outbox_sweep", "schedule": 30.0},
    "audit-trail-verify": {"task": "qms.audit_trail_verify", "schedule": crontab(hour=2, minute=15)},
    # Hourly in the working day; each reminder has a per-day key, so only the first run of a day sends it.
    "qms-reminders": {"task": "qms.reminders_send", "schedule": crontab(minute=5, hour="5-17")},
    # Ends and records the sessions of people who never came back (Annex 11 §12.4); the event holds
    # the moment each expired, so the interval only bounds how long an ended session's row lingers.
    "sessions-expire-idle": {"task": "qms.sessions_expire_idle", "schedule": 120.0, "options": {"expires": 110}},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(LOCAL_DIR / "celerybeat-schedule")
# The outbox gives up sending to a dead broker quickly; the sweep sends it later.
OUTBOX_PUBLISH_RETRIES = 1
OUTBOX_SWEEP_AGE = timedelta(seconds=5)
# Work queued at a high rate is sent by the relay (woken by NOTIFY), never by the request itself.
# Each maps to the task that takes a group of them: the relay sends what one sweep took of it as one
# Celery message (qms/outbox.py), because a publish costs the relay about 1 ms of CPU. Only tasks
# idempotent on their kwargs belong here (a row can go in another group when it is sent again).
OUTBOX_RELAY_TASKS = {"ebr.alarms_evaluate": "ebr.alarms_evaluate_posts"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}

TEST_RUNNER = "django.test.runner.DiscoverRunner"

# Change reasons are free text of any length; history rows carry them as written.
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True
SIMPLE_HISTORY_REVERT_DISABLED = True  # history is evidence, never a way back
LOGIN_URL_PATH = "/login/"

# Lockout is per account (21 CFR 11.300(d)). Locking by IP as well would lock every operator of
# a cleanroom that shares one tablet; failed attempts are still recorded with their IP.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]

# Batch execution (ALCOA+: contemporaneous). An entry made later than this after the work is
# marked late; the time the work was done can be set back at most ENTRY_BACKDATE_LIMIT.
LATE_ENTRY_THRESHOLD = timedelta(minutes=env_int("LATE_ENTRY_MINUTES", 30, minimum=1, maximum=1440))
ENTRY_BACKDATE_LIMIT = timedelta(hours=env_int("ENTRY_BACKDATE_HOURS", 12, minimum=1, maximum=72))
# Work queued (through the outbox) when a batch's last step is done.
BATCH_COMPLETED_TASKS = ["ebr.batch_completed_notify", "nlp_review.review_batch"]

# Signed PDF batch records (21 CFR 11.10(b), EU GMP Annex 11 §8): the facility's PAdES signing key,
# certificate and chain, the roots `verify_pdf` trusts, and an optional RFC 3161 time-stamp authority.
# The defaults point at the demo PKI that `seed_demo` creates under .local/pki (never for production).
PDF_PKI_DIR = LOCAL_DIR / "pki"
PDF_SIGNING_KEY = Path(env_str("PDF_SIGNING_KEY", str(PDF_PKI_DIR / "signing.key")))
PDF_SIGNING_CERT = Path(env_str("PDF_SIGNING_CERT", str(PDF_PKI_DIR / "signing.crt")))
PDF_SIGNING_CHAIN = [Path(p) for p in env_list("PDF_SIGNING_CHAIN", str(PDF_PKI_DIR / "ca.crt"))]
PDF_SIGNING_KEY_PASSPHRASE = env_str("PDF_SIGNING_KEY_PASSPHRASE", "")  # or PDF_SIGNING_KEY_PASSPHRASE_FILE
PDF_TRUST_ROOTS = [Path(p) for p in env_list("PDF_TRUST_ROOTS", str(PDF_PKI_DIR / "ca.crt"))]
PDF_TSA_URL = env_str("PDF_TSA_URL", "")
PDF_EXPORT_DIR = Path(env_str("PDF_EXPORT_DIR", str(LOCAL_DIR / "exports")))
PDF_FONT_DIR = Path(env_str("PDF_FONT_DIR", "/usr/share/fonts/truetype/dejavu"))

# Instruments and process data (specs/instrument-api.md). The cache holds the per-instrument
# request counters of the rate limit, shared by every web process through Redis.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                      "KEY_PREFIX": "ebr", "TIMEOUT": 300}}
INSTRUMENT_RATE_LIMIT = env_str("INSTRUMENT_RATE_LIMIT", "600/min")
# The most INSTRUMENT_MAX_AGE_DAYS may be set to: release checks look that far for late posts.
INSTRUMENT_MAX_AGE_CEILING = timedelta(days=366)
INSTRUMENT_MAX_BODY_BYTES = env_int("INSTRUMENT_MAX_BODY_MB", 8, minimum=1, maximum=64) * 1024 * 1024
INSTRUMENT_MAX_AGE = timedelta(days=env_int("INSTRUMENT_MAX_AGE_DAYS", 30, minimum=1,
                                            maximum=INSTRUMENT_MAX_AGE_CEILING.days))
# Posts of up to this many readings are evaluated against the alarm limits before the API answers,
# so that the answer lists the alarms they raised (specs/instrument-api.md); larger posts (a
# buffer, a backfill) are left to the worker, as every post is queued anyway. 0: never inline.
INSTRUMENT_EVALUATE_INLINE_MAX = env_int("INSTRUMENT_EVALUATE_INLINE_MAX", 500, minimum=0, maximum=5000)
INSTRUMENT_FEED_GAP = timedelta(minutes=env_int("INSTRUMENT_FEED_GAP_MINUTES", 10, minimum=1, maximum=1440))
CELERY_BEAT_SCHEDULE["instrument-feed-gaps"] = {"task": "ebr.feed_gaps_check", "schedule": 60.0}
# A run not started within 55 s is dropped: the next one looks at the same posts, so runs never queue up.
CELERY_BEAT_SCHEDULE["alarm-evaluations-overdue"] = {"task": "ebr.alarms_evaluate_overdue", "schedule": 60.0,
                                                     "options": {"expires": 55}}
