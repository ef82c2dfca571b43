"""Settings shared by every environment. Values that differ come from console.env."""

import shlex
import sys
from datetime import timedelta

from csp.constants import NONE, SELF
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
    "csp",
    "apps.common",
    "apps.accounts",
    "apps.audit",
    "apps.workflows",
    "apps.catalog",
    "apps.cloud",
    "apps.logs",
    "apps.costs",
    "apps.registry",
    "apps.tuning",
    "apps.feedback",
    "apps.evaluation",
]

MIDDLEWARE = [
    "apps.common.metrics.RequestMetricsMiddleware",
    "apps.common.middleware.RequestContextMiddleware",
    # /healthz, /readyz and /metrics for probes and scrapers that address the pod by IP: before the
    # Host check (CommonMiddleware) and the HTTPS redirect. See apps/common/probes.py.
    "apps.common.probes.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apps.common.database.DatabaseUnavailableMiddleware",
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

# Sign-in: passwords (the embedded default; ATALAYA_PASSWORD_SIGN_IN=false turns them off) and, when
# OIDC_RP_CLIENT_ID is set, Google or any OpenID Connect provider through mozilla-django-oidc
# (apps/accounts/oidc.py; README.md, "Sign-in with Google or OpenID Connect"). The OIDC backend is
# always listed and authenticates nobody while OIDC is off.
PASSWORD_SIGN_IN = env.bool("ATALAYA_PASSWORD_SIGN_IN", default=True)
AUTHENTICATION_BACKENDS = [
    *(["django.contrib.auth.backends.ModelBackend"] if PASSWORD_SIGN_IN else []),
    "apps.accounts.oidc.OidcBackend",
]
OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("OIDC_RP_CLIENT_SECRET", default="")
OIDC_PROVIDER_NAME = env.str("OIDC_PROVIDER_NAME", default="OpenID Connect")  # the button: "Sign in with …"
OIDC_DISCOVERY_URL = env.str("OIDC_DISCOVERY_URL", default="")  # read once per process; settings below win
OIDC_OP_ISSUER = env.list("OIDC_OP_ISSUER", default=[])  # the ID token's `iss` (several spellings allowed)
OIDC_OP_AUTHORIZATION_ENDPOINT = env.str("OIDC_OP_AUTHORIZATION_ENDPOINT", default="")
OIDC_OP_TOKEN_ENDPOINT = env.str("OIDC_OP_TOKEN_ENDPOINT", default="")
OIDC_OP_USER_ENDPOINT = env.str("OIDC_OP_USER_ENDPOINT", default="")
OIDC_OP_JWKS_ENDPOINT = env.str("OIDC_OP_JWKS_ENDPOINT", default="")
OIDC_RP_SIGN_ALGO = env.str("OIDC_RP_SIGN_ALGO", default="RS256")
OIDC_RP_SCOPES = env.str("OIDC_RP_SCOPES", default="openid email profile")
OIDC_USE_PKCE = env.bool("OIDC_USE_PKCE", default=True)
OIDC_TOKEN_USE_BASIC_AUTH = env.bool("OIDC_TOKEN_USE_BASIC_AUTH", default=False)
OIDC_TIMEOUT = env.float("OIDC_TIMEOUT_SECONDS", default=10.0)
OIDC_GROUPS_CLAIM = env.str("OIDC_GROUPS_CLAIM", default="groups")
OIDC_GROUP_ROLES = env.str("OIDC_GROUP_ROLES", default="")  # group=team:role,… (checked at startup)
OIDC_ALLOW_UNMAPPED = env.bool("OIDC_ALLOW_UNMAPPED", default=False)
OIDC_ALLOWED_DOMAINS = env.list("OIDC_ALLOWED_DOMAINS", default=[])
OIDC_DOMAIN_CLAIM = env.str("OIDC_DOMAIN_CLAIM", default="")  # "hd" for Google Workspace
OIDC_AUTHENTICATION_CALLBACK_URL = "accounts:oidc_callback"
LOGIN_REDIRECT_URL_FAILURE = "accounts:login"

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

# Content security policy (django-csp): only our own scripts, styles and images, no plugins, no framing,
# and neither a nonce nor 'unsafe-inline', for scripts or styles. Every page is built for it: no inline
# <script>, event handler or style="" in templates/ (widths are classes, behaviour is in static/js; tested),
# htmx's indicator style is in atalaya.css (htmx-config meta in base.html). Plotly.js injects <style>
# elements when it loads (its own rules and MapLibre's): the costs dashboard links them as files with the
# ids Plotly looks for, so it injects none (scripts/plotly_css.py); the rest of its styling goes through
# the DOM (element.style), which CSP allows. Swagger UI (/api/docs/) runs as drf-spectacular's split view
# (its init script is a file) with its page style in a file (templates/api/swagger_ui.html), so it needs
# no per-view exception. 'report-sample' only puts the blocked text into violation events; the browser
# tests fail on any violation (tests/e2e/conftest.py). form-action: a sign-in with an outside identity
# provider may post or redirect there, so its origins can be added with CSP_FORM_ACTION_EXTRA
# (comma-separated).
CSP_FORM_ACTION_EXTRA = env.list("CSP_FORM_ACTION_EXTRA", default=[])
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, "'report-sample'"],
        "style-src": [SELF, "'report-sample'"],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF, *CSP_FORM_ACTION_EXTRA],
    }
}

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
    "DEFAULT_THROTTLE_CLASSES": ["apps.common.ratelimit.ApiRateThrottle"],
}
# API rate limits per token (or per user, for a browser session): N/s, N/min, N/hour, N/day, or "off".
# Generous by default: applications resolve prompts in a loop. Writes also count against the second.
# A fixed-window counter in the cache: shared by every process on Redis, per process on the embedded
# default (apps/common/ratelimit.py).
API_RATE_LIMIT = env.str("ATALAYA_API_RATE_LIMIT", default="6000/min")
API_WRITE_RATE_LIMIT = env.str("ATALAYA_API_WRITE_RATE_LIMIT", default="1200/min")
# Sign-in throttling (password sign-in page): after this many failed attempts for one username, or from
# one address, within the window, further attempts are refused (429) until the window has passed from
# the lockout, without checking the password. Counted in the cache (apps.accounts.services).
SIGN_IN_FAILURES_PER_USERNAME = env.int("ATALAYA_SIGN_IN_FAILURES_PER_USERNAME", default=5)
SIGN_IN_FAILURES_PER_IP = env.int("ATALAYA_SIGN_IN_FAILURES_PER_IP", default=20)
SIGN_IN_WINDOW_SECONDS = env.int("ATALAYA_SIGN_IN_WINDOW_SECONDS", default=15 * 60)
# Proxies in front of the web processes that append to X-Forwarded-For (0: none, REMOTE_ADDR is the
# client). Sets the address that sign-in throttling counts and audit events record.
TRUSTED_PROXY_COUNT = env.int("ATALAYA_TRUSTED_PROXY_COUNT", default=0)
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
    else {
        # Redis: a message a worker has taken stays in Redis, unacknowledged, until its task ends (late
        # acknowledgement). If the worker dies, or its connection drops while Redis restarts, Redis puts the
        # message back on the queue once this many seconds have passed, and another worker runs it again
        # (every task is idempotent). It must exceed the longest wait of a retried task (backoff, at most
        # 600 s: the worker holds such a message until then) plus the longest hard time limit (retention,
        # 660 s), or a task still waiting or running is delivered a second time.
        "visibility_timeout": env.int("CELERY_BROKER_VISIBILITY_TIMEOUT", default=1800),
    }
)
# Nothing lost when the broker restarts: queued messages survive only if the broker persists them (Redis
# with appendonly, or a managed Redis with persistence: deploy/README.md, "Failure modes"); a worker waits
# for the broker to come back, however long (None: retry forever instead of exiting after 100 tries),
# also when it starts before the broker.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A task running when the connection drops keeps running: it finishes and commits, and its message is
# acknowledged once the worker has reconnected or, if that acknowledgement is lost, goes back on the queue
# after the visibility timeout and runs again, changing nothing. True (Celery 6's default) would kill the
# running tasks and leave their work to the redelivery, up to visibility_timeout later.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
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
# The tuning poller (beat) reads every running job's state this often.
TUNING_POLL_SECONDS = env.int("ATALAYA_TUNING_POLL_SECONDS", default=10)
CELERY_BEAT_SCHEDULE = {
    "logs-dispatch-pending": {"task": "workers.logs.dispatch_pending", "schedule": timedelta(seconds=30)},
    "logs-export": {"task": "workers.logs.export", "schedule": timedelta(minutes=1)},
    "costs-rollup": {"task": "workers.costs.rollup", "schedule": timedelta(minutes=1)},
    "logs-retention": {"task": "workers.logs.apply_retention", "schedule": timedelta(hours=6)},
    "tuning-poll": {"task": "workers.tuning.poll_jobs", "schedule": timedelta(seconds=TUNING_POLL_SECONDS)},
    "workflows-notify-pending": {
        "task": "workers.workflows.notify_pending",
        "schedule": timedelta(minutes=1),
    },
    "deployments-catch-up": {"task": "workers.deployments.catch_up", "schedule": timedelta(minutes=5)},
    "registry-mlflow-catch-up": {
        "task": "workers.registry.mlflow_catch_up",
        "schedule": timedelta(minutes=5),
    },
    "evaluation-catch-up": {"task": "workers.evaluation.catch_up", "schedule": timedelta(minutes=1)},
    "audit-verify-chain": {
        "task": "workers.audit.verify_chain",
        "schedule": timedelta(minutes=env.int("ATALAYA_AUDIT_VERIFY_MINUTES", default=60)),
    },
}

# E-mail (review notifications, budget alerts) from EMAIL_URL (django-environ): smtp+tls://user:pass@host:587
# (STARTTLS), smtp+ssl://user:pass@host:465 (TLS from the start), smtp://host:25, consolemail://, or
# filemail:////absolute/folder. %-encode @, : and / in the user or password. Default: one file per message
# under var/mail. EMAIL_BACKEND, if set, still names the backend class (it came before EMAIL_URL).
_email = env.email_url_config(env.str("EMAIL_URL", default="") or "filemail://")  # empty: the default
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default=_email["EMAIL_BACKEND"])
EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
EMAIL_PORT = _email["EMAIL_PORT"] or (465 if _email.get("EMAIL_USE_SSL") else 25)
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS", False))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL", False))
EMAIL_FILE_PATH = _email["EMAIL_FILE_PATH"] or VAR_DIR / "mail"
# An SMTP server that hangs must not hold a worker.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT_SECONDS", default=10)
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
# The registry's mirror: MLflow on a local SQLite store by default, a tracking server by URL.
MLFLOW_TRACKING_URI = env.str("MLFLOW_TRACKING_URI", default=f"sqlite:///{VAR_DIR / 'mlflow.db'}")
MLFLOW_REGISTRY_URI = env.str("MLFLOW_REGISTRY_URI", default="") or MLFLOW_TRACKING_URI
MLFLOW_EXPERIMENT = env.str("MLFLOW_EXPERIMENT", default="atalaya-registry")
# Where tuning jobs write their adapters on Vertex AI (one folder per job under it): gs://bucket/tuning
TUNING_ARTIFACTS_URI = env.str("ATALAYA_TUNING_ARTIFACTS_URI", default="")
# The local runner (JOB_BACKEND=local): job folders, and the trainer's command line (deploy/trainer/).
LOCAL_JOBS_DIR = env.str("ATALAYA_LOCAL_JOBS_DIR", default=str(VAR_DIR / "jobs"))
# The only folders the local runner reads datasets from (the trainer's examples, exported datasets).
LOCAL_DATASET_DIRS = env.list(
    "ATALAYA_LOCAL_DATASET_DIRS",
    default=[str(BASE_DIR / "deploy" / "trainer" / "examples"), str(VAR_DIR / "datasets")],
)
# Where datasets exported from annotations (atalaya://datasets/…) are written out for the local runner.
LOCAL_EXPORTED_DATASETS_DIR = env.str("ATALAYA_EXPORTED_DATASETS_DIR", default=str(VAR_DIR / "datasets"))
# Its endpoints and traffic splits (the local serving backend keeps them in JSON files there).
LOCAL_ENDPOINTS_DIR = env.str("ATALAYA_LOCAL_ENDPOINTS_DIR", default=str(VAR_DIR / "endpoints"))
TRAINER_COMMAND = shlex.split(
    env.str("ATALAYA_TRAINER_COMMAND", default=f"{shlex.quote(sys.executable)} deploy/trainer/train.py")
)

# GPU jobs and serving (apps/cloud/jobs): local runner by default, Vertex AI by setting.
JOB_BACKEND = env.str("JOB_BACKEND", default="local")  # local | vertex
VERTEX_PROJECT = env.str("VERTEX_PROJECT", default="")  # empty: GOOGLE_CLOUD_PROJECT
VERTEX_LOCATION = env.str("VERTEX_LOCATION", default="us-central1")
VERTEX_STAGING_BUCKET = env.str("VERTEX_STAGING_BUCKET", default="")  # gs://… for the SDK's staging
VERTEX_TRAINER_IMAGE = env.str("VERTEX_TRAINER_IMAGE", default="")  # built from deploy/trainer/Dockerfile
VERTEX_SERVING_IMAGE = env.str("VERTEX_SERVING_IMAGE", default="")  # serving container for registered models
VERTEX_SERVICE_ACCOUNT = env.str("VERTEX_SERVICE_ACCOUNT", default="")  # the identity jobs run as
VERTEX_API_ENDPOINT = env.str("VERTEX_API_ENDPOINT", default="")  # tests point this at the in-repo fake
VERTEX_TIMEOUT_SECONDS = env.float("VERTEX_TIMEOUT_SECONDS", default=30.0)  # each call
VERTEX_OPERATION_TIMEOUT_SECONDS = env.float("VERTEX_OPERATION_TIMEOUT_SECONDS", default=1800.0)  # deploys
VERTEX_RETRY = env.bool("VERTEX_RETRY", default=True)  # a short retry on UNAVAILABLE; False: retry=None
VERTEX_ANONYMOUS_CREDENTIALS = env.bool("VERTEX_ANONYMOUS_CREDENTIALS", default=False)  # only the fake

# Evaluation runs (apps/evaluation/providers): the model providers and how hard they are driven.
EVALUATION_CONCURRENCY = env.int("EVALUATION_CONCURRENCY", default=32)  # requests in flight per run
# Per provider and per process (each worker process has its own limiter); 0 = no limit.
EVALUATION_RATE_PER_SECOND = env.float("EVALUATION_RATE_PER_SECOND", default=200.0)
EVALUATION_MAX_ATTEMPTS = env.int("EVALUATION_MAX_ATTEMPTS", default=4)  # calls per case, retries included
EVALUATION_RETRY_BASE_SECONDS = env.float("EVALUATION_RETRY_BASE_SECONDS", default=0.5)  # backoff base
EVALUATION_RETRY_MAX_SECONDS = env.float("EVALUATION_RETRY_MAX_SECONDS", default=30.0)  # longest wait
EVALUATION_TIMEOUT_SECONDS = env.float("EVALUATION_TIMEOUT_SECONDS", default=60.0)  # each model call
EVALUATION_OPENAI_BASE_URL = env.str("EVALUATION_OPENAI_BASE_URL", default="")  # e.g. http://vllm:8000/v1
EVALUATION_OPENAI_API_KEY = env.str("EVALUATION_OPENAI_API_KEY", default="")  # sent as a bearer token
EVALUATION_OPENAI_EMBEDDING_MODEL = env.str("EVALUATION_OPENAI_EMBEDDING_MODEL", default="")
EVALUATION_VERTEX_EMBEDDING_MODEL = env.str("EVALUATION_VERTEX_EMBEDDING_MODEL", default="")
# The replay provider's lookup (recorded response by request key): a dotted path to a callable.
EVALUATION_REPLAY_LOOKUP = env.str("EVALUATION_REPLAY_LOOKUP", default="")

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
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # The HTTP clients (the openai client's among them) log every request at INFO: a line per case.
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}
ADMIN_URL = env.str("DJANGO_ADMIN_URL", default="admin/")

# The database unreachable: 503 with this Retry-After (apps.common.database), never a 500.
DATABASE_UNAVAILABLE_RETRY_AFTER_SECONDS = 5

# Operations: /readyz and /metrics (apps.common.health, apps.common.metrics).
READYZ_TIMEOUT_SECONDS = env.float("ATALAYA_READYZ_TIMEOUT_SECONDS", default=2.0)
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")  # scrapers send Authorization: Bearer <token>
METRICS_ALLOW_PRIVATE_NETWORKS = env.bool("METRICS_ALLOW_PRIVATE_NETWORKS", default=True)
METRICS_STATE_CACHE_SECONDS = env.int("METRICS_STATE_CACHE_SECONDS", default=10)

# Evaluation runs (apps.evaluation.runs): the catalog prompt (in the run's team) whose `production` version
# judges answers against a case's rubric.
EVALUATION_JUDGE_PROMPT = env.str("ATALAYA_EVALUATION_JUDGE_PROMPT", default="atalaya-judge")
# The model name an adapter version answers to on the OpenAI-compatible server (its vLLM LoRA module).
EVALUATION_ADAPTER_MODEL_NAME = env.str("EVALUATION_ADAPTER_MODEL_NAME", default="{adapter}-v{version}")
