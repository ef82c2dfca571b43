"""Settings shared by every environment. Values that differ come from console.env."""

from datetime import timedelta

from django.utils.translation import gettext_lazy as _

from console.env import BASE_DIR, VAR_DIR, env

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "apps.common",
    "apps.accounts",
    "apps.audit",
    "apps.workflows",
    "apps.catalog",
    "apps.cloud",
    "apps.logs",
    "apps.costs",
    "apps.feedback",
]

MIDDLEWARE = [
    "apps.common.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apps.common.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"
ASGI_APPLICATION = "console.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.common.context_processors.navigation",
            ],
        },
    },
]

# Database: SQLite on the embedded default, anything django-environ understands otherwise.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'atalaya.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # BEGIN IMMEDIATE: a transaction takes the write lock when it starts, so concurrent
            # writers queue instead of failing half-way with "database is locked".
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://atalaya")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("es", _("Spanish"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("ATALAYA_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Requests: refuse oversized bodies before they reach a view (413 through the API handler).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("ATALAYA_MAX_REQUEST_BYTES", default=1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["apps.common.parsers.LimitedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "apps.common.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.common.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Atalaya API",
    "DESCRIPTION": "Governance console for LLMs: approved prompts, approvals, audit.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from our own static files (no CDN: the console works on a closed network).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery: the embedded default is a filesystem broker under var/, with a real worker and beat.
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost//")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {"visibility_timeout": 3600}
)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "logs-dispatch-pending": {"task": "workers.logs.dispatch_pending", "schedule": timedelta(seconds=30)},
    "logs-export": {"task": "workers.logs.export", "schedule": timedelta(minutes=1)},
    "costs-rollup": {"task": "workers.costs.rollup", "schedule": timedelta(minutes=1)},
    "logs-retention": {"task": "workers.logs.apply_retention", "schedule": timedelta(hours=6)},
    "audit-verify-chain": {
        "task": "workers.audit.verify_chain",
        "schedule": timedelta(minutes=env.int("ATALAYA_AUDIT_VERIFY_MINUTES", default=60)),
    },
}

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="atalaya@localhost")
ATALAYA_BASE_URL = env.str("ATALAYA_BASE_URL", default="http://127.0.0.1:8000")

# Catalog: labels that only move through governance (a governance user, or an approved request).
CATALOG_PROTECTED_LABELS = env.list("ATALAYA_PROTECTED_LABELS", default=["production"])
# With the embedded default the cache lives in each process, and a label move clears it only in the
# process that made it: keep the bound short (the token path uses its own 2 s snapshots).
CATALOG_RESOLVE_CACHE_SECONDS = env.int("ATALAYA_RESOLVE_CACHE_SECONDS", default=5)

# Outside systems (apps/cloud): local implementations by default, Google Cloud by setting.
PII_SCANNER = env.str("PII_SCANNER", default="local")  # local | dlp
WAREHOUSE = env.str("WAREHOUSE", default="local")  # local | bigquery
GOOGLE_CLOUD_PROJECT = env.str("GOOGLE_CLOUD_PROJECT", default="")
DLP_LOCATION = env.str("DLP_LOCATION", default="global")
DLP_API_ENDPOINT = env.str("DLP_API_ENDPOINT", default="")  # tests point this at the in-repo fake
DLP_TIMEOUT_SECONDS = env.float("DLP_TIMEOUT_SECONDS", default=30.0)
DLP_RETRY = env.bool("DLP_RETRY", default=True)  # a short retry on UNAVAILABLE; False: retry=None
DLP_ANONYMOUS_CREDENTIALS = env.bool("DLP_ANONYMOUS_CREDENTIALS", default=False)  # only for the in-repo fake
BIGQUERY_DATASET = env.str("BIGQUERY_DATASET", default="atalaya")
BIGQUERY_TABLE = env.str("BIGQUERY_TABLE", default="log_events")
BIGQUERY_LOCATION = env.str("BIGQUERY_LOCATION", default="EU")
BIGQUERY_API_ENDPOINT = env.str("BIGQUERY_API_ENDPOINT", default="")  # tests point this at bqemulator

# Logs: staged text is encrypted with these Fernet keys (newest first; Secret Manager in production).
LOG_STAGING_KEYS = env.list("ATALAYA_STAGING_KEYS", default=[])
PII_TOKEN_KEY = env.str("ATALAYA_PII_TOKEN_KEY", default="")
LOG_BATCH_MAX_EVENTS = 500
LOG_BATCH_MAX_BYTES = env.int("ATALAYA_LOG_BATCH_MAX_BYTES", default=5 * 1024 * 1024)
LOG_TEXT_MAX_BYTES = 1024 * 1024
LOG_SCAN_CHUNK = env.int("ATALAYA_LOG_SCAN_CHUNK", default=500)
LOG_STAGED_GRACE_SECONDS = env.int("ATALAYA_LOG_STAGED_GRACE_SECONDS", default=60)
LOG_RETRY_BASE_SECONDS = env.int("ATALAYA_LOG_RETRY_BASE_SECONDS", default=30)
LOG_RETRY_MAX_SECONDS = env.int("ATALAYA_LOG_RETRY_MAX_SECONDS", default=3600)
LOG_DEFAULT_RETENTION_DAYS = env.int("ATALAYA_LOG_RETENTION_DAYS", default=90)

# Costs: one currency for prices, spend and budgets.
COSTS_CURRENCY = env.str("ATALAYA_CURRENCY", default="USD")
BUDGET_STATE_CACHE_SECONDS = 5

# API tokens: how often "last used" is written (a write per request would serialise the hot path).
TOKEN_LAST_USED_RESOLUTION_SECONDS = 60

# Logs: plain lines on the embedded default, JSON lines (one object per record, with the request id that
# is also carried into Celery tasks) with LOG_FORMAT=json. See README.md, "Operations".
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ValueError(f"LOG_FORMAT is {LOG_FORMAT!r}: plain or json.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "apps.common.logformat.JsonFormatter"},
    },
    "filters": {"request_id": {"()": "apps.common.logformat.RequestIdFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
ADMIN_URL = env.str("DJANGO_ADMIN_URL", default="admin/")

# Operations: /readyz and /metrics (apps.common.health, apps.common.metrics).
READYZ_TIMEOUT_SECONDS = env.float("ATALAYA_READYZ_TIMEOUT_SECONDS", default=2.0)
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")  # scrapers send Authorization: Bearer <token>
METRICS_ALLOW_PRIVATE_NETWORKS = env.bool("METRICS_ALLOW_PRIVATE_NETWORKS", default=True)
METRICS_STATE_CACHE_SECONDS = env.int("METRICS_STATE_CACHE_SECONDS", default=10)
