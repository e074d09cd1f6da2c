"""GeoSim settings, read from the environment (see the configuration table in README.md).

Embedded default: SQLite under GEOSIM_DATA_DIR and Celery tasks executed in-process.
With DATABASE_URL and REDIS_URL set: Postgres and real Celery workers over Redis.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from .env import env_bool, env_bytes, env_int, env_list, env_rate, env_str
from .local_secret import SECRET_KEY_FILE, data_dir, read_secret_key
from .storage import media_storage

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

# Everything GeoSim writes: uploaded images, thumbnails, index versions, model checkpoints, SQLite.
GEOSIM_DATA_DIR = data_dir(BASE_DIR)

# The environment's key, else the one `make demo` stored in GEOSIM_DATA_DIR/secret_key (see local_secret.py).
SECRET_KEY = env_str("SECRET_KEY") or read_secret_key(GEOSIM_DATA_DIR)
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Production mode (DEBUG off) refuses to start without it: "
            "set SECRET_KEY to a long random string, or DEBUG=1 for local development "
            f"(after `make demo`, {GEOSIM_DATA_DIR / SECRET_KEY_FILE} holds a key for this checkout)."
        )
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production"  # noqa: S105 — DEBUG=1 only

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

MEDIA_ROOT = GEOSIM_DATA_DIR / "media"
MEDIA_URL = "/media/"
# Serve uploaded media from Django itself (the default: GeoSim is self-contained behind any proxy).
GEOSIM_SERVE_MEDIA = env_bool("GEOSIM_SERVE_MEDIA", True)
GEOSIM_INDEX_DIR = GEOSIM_DATA_DIR / "index"
GEOSIM_MODEL_DIR = GEOSIM_DATA_DIR / "models"

# Limits on what an upload may be.
GEOSIM_MAX_UPLOAD_BYTES = env_bytes("GEOSIM_MAX_UPLOAD_BYTES", 20 * 1000**2)
GEOSIM_MAX_PIXELS = env_int("GEOSIM_MAX_PIXELS", 40_000_000, minimum=1)
GEOSIM_MAX_ARCHIVE_BYTES = env_bytes("GEOSIM_MAX_ARCHIVE_BYTES", 4 * 1000**3)
GEOSIM_MAX_ARCHIVE_MEMBERS = env_int("GEOSIM_MAX_ARCHIVE_MEMBERS", 1_000_000, minimum=1)
# One upload through the admin (an archive, or many images): larger collections go through import_images.
GEOSIM_MAX_ARCHIVE_UPLOAD_BYTES = env_bytes("GEOSIM_MAX_ARCHIVE_UPLOAD_BYTES", 1000**3)
GEOSIM_SEARCH_RATE = env_rate("GEOSIM_SEARCH_RATE", "20/second")
GEOSIM_UPLOAD_RATE = env_rate("GEOSIM_UPLOAD_RATE", "10/second")
# Images a processing job handles at once (thumbnails, embeddings).
GEOSIM_BATCH_SIZE = env_int("GEOSIM_BATCH_SIZE", 512, minimum=1)
# CPU threads for the CNN and FAISS; 1 is fastest for single queries (see docs/PERFORMANCE.md).
GEOSIM_TORCH_THREADS = env_int("GEOSIM_TORCH_THREADS", 1, minimum=1)
GEOSIM_SEARCH_THREADS = env_int("GEOSIM_SEARCH_THREADS", 1, minimum=1)
GEOSIM_BUILD_THREADS = env_int("GEOSIM_BUILD_THREADS", 2, minimum=1)
# Up to this many vectors the index is exact; above it, approximate (IVF-SQ8) with measured recall.
GEOSIM_EXACT_INDEX_LIMIT = env_int("GEOSIM_EXACT_INDEX_LIMIT", 200_000, minimum=1)
# How often (seconds) a process checks whether a newer index version is live; 0 checks on every search.
GEOSIM_INDEX_CHECK_SECONDS = float(env_int("GEOSIM_INDEX_CHECK_MS", 500, minimum=0)) / 1000
# An upload or deletion is saved as a segment beside the live index; a background job folds them into a
# new base when they reach this many, or 5 % of the base (see vectorindex/segments.py for why).
GEOSIM_INDEX_MAX_SEGMENTS = env_int("GEOSIM_INDEX_MAX_SEGMENTS", 256, minimum=1)
# Index versions kept on disk besides the live one (processes may still be reading the previous one).
GEOSIM_INDEX_KEEP = env_int("GEOSIM_INDEX_KEEP", 2, minimum=1)
# A running job's worker writes a heartbeat this often; a job silent for GEOSIM_JOB_STALE_SECONDS is recovered.
GEOSIM_JOB_HEARTBEAT_SECONDS = env_int("GEOSIM_JOB_HEARTBEAT_SECONDS", 5, minimum=1)
GEOSIM_JOB_STALE_SECONDS = env_int("GEOSIM_JOB_STALE_SECONDS", 60, minimum=2)
# The shipped checkpoint, registered as the first model version when none exists.
GEOSIM_DEFAULT_CHECKPOINT = Path(
    env_str("GEOSIM_DEFAULT_CHECKPOINT", str(BASE_DIR / "training" / "weights" / "default.pt"))
)

# Request bodies: Django keeps at most this much in memory, the rest spools to a temp file.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_500_000
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_500_000
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("GEOSIM_MAX_FILES_PER_UPLOAD", 1000, minimum=1)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "search",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "search.middleware.ApiGuardMiddleware",  # /api/: 413 before reading big bodies, JSON errors
    "search.middleware.QueryStringGuardMiddleware",  # ?x=%00 → 400 (Postgres cannot hold NUL)
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "geosim_site.urls"
WSGI_APPLICATION = "geosim_site.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{GEOSIM_DATA_DIR / 'geosim.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, with a health check that skips connections proven good a moment ago (see its docstring).
    DATABASES["default"]["ENGINE"] = "geosim_site.postgresql"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Let the web process and in-process tasks wait for each other's writes instead of failing.
    # WAL: pages keep reading while a background job writes (the embedded mode's jobs run on threads).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = GEOSIM_DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "templates" / "static"]
# Uploaded media: the local disk under MEDIA_ROOT unless GEOSIM_STORAGE_URL=s3://bucket/prefix (geosim_site/storage.py).
GEOSIM_STORAGE_URL = env_str("GEOSIM_STORAGE_URL") or None
STORAGES = {
    "default": media_storage(GEOSIM_STORAGE_URL, endpoint_url=env_str("GEOSIM_S3_ENDPOINT_URL") or None),
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "geosim_site.staticfiles.StaticFilesStorage"
    },
}
# Until `collectstatic` has written its manifest, serve static files straight from their source folders
# (geosim_site/staticfiles.py explains; a system check prints the command).
WHITENOISE_USE_FINDERS = DEBUG or not (STATIC_ROOT / "staticfiles.json").exists()

LOGIN_URL = "/admin/login/"

# Celery: a real worker over Redis when REDIS_URL is set, otherwise tasks run in-process.
REDIS_URL = env_str("REDIS_URL")
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ALWAYS_EAGER = REDIS_URL is None
# Without a worker, jobs run on background threads of the web process ("background"), so requests
# never wait for them; "inline" runs them in the request (the test suite, for determinism).
GEOSIM_IN_PROCESS_JOBS = env_str("GEOSIM_IN_PROCESS_JOBS", "background")
if GEOSIM_IN_PROCESS_JOBS not in {"background", "inline"}:
    raise ImproperlyConfigured("GEOSIM_IN_PROCESS_JOBS must be 'background' or 'inline'.")
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another worker
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
# Three queues (search.services.jobs.job_queue): "celery" (uploads, indexing, model switches), "geosim-low"
# (explorer projections) and "training" (model training, hours-long at worst). A worker started without -Q
# consumes all three; docker-compose.yml gives training a worker of its own, so it never delays indexing.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = (Queue("celery"), Queue("geosim-low"), Queue("training"))
# When Redis is down, a request that queues a job answers at once: the job row stays pending and the
# sweep sends it later. So a publish tries once (no retry loop), a refused connection fails at once, an
# unreachable host after BROKER_CONNECT_TIMEOUT_S and a hung Redis after BROKER_SOCKET_TIMEOUT_S. Workers
# keep reconnecting on their own (broker_connection_retry), whatever these say.
BROKER_CONNECT_TIMEOUT_S = 1
BROKER_SOCKET_TIMEOUT_S = 2  # above kombu's 1 s BRPOP wait, so idle workers never time out
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_CONNECT_TIMEOUT_S
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_S,
    "socket_timeout": BROKER_SOCKET_TIMEOUT_S,
    "max_retries": 0,  # one connect attempt (kombu otherwise retries until connect_timeout has passed)
}
CELERY_TASK_PUBLISH_RETRY = False
# Job rows are the record of every job; Celery's result store is never read. Not writing results also
# keeps a publish from waiting on the result backend, whose reconnect loop takes ~20 s when Redis is down.
CELERY_TASK_IGNORE_RESULT = True
# The sweep: re-send jobs that never reached a worker and recover jobs whose worker died.
CELERY_BEAT_SCHEDULE = {"sweep-jobs": {"task": "search.sweep_jobs", "schedule": 30.0}}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_RESULT_EXPIRES = 3600

# Caches: "throttle" holds the API's rate-limit counters. With Redis they are shared by every web
# process (otherwise each process would allow the full rate); short socket timeouts, because the
# throttle lets requests through when Redis is unreachable rather than making them wait.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "geosim-default"},
    "throttle": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "geosim-throttle",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "geosim-throttle"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "search.api.pagination.CheckedPageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_RATES": {"search": GEOSIM_SEARCH_RATE, "upload": GEOSIM_UPLOAD_RATE},
    "EXCEPTION_HANDLER": "search.api.exceptions.api_exception_handler",
    # Throttles key anonymous callers by address: trust X-Forwarded-For only from this many proxies in front.
    "NUM_PROXIES": env_int("GEOSIM_NUM_PROXIES", 0, minimum=0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "GeoSim API",
    "DESCRIPTION": "Similarity search for geological images.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Separate request/response components, so multipart uploads are described as binary files.
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
}

# Security headers; HTTPS-only cookies and HSTS when GEOSIM_HTTPS=1 (behind a TLS proxy).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
_HTTPS = env_bool("GEOSIM_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _HTTPS
SECURE_SSL_REDIRECT = _HTTPS
SECURE_HSTS_SECONDS = env_int("GEOSIM_HSTS_SECONDS", 31_536_000 if _HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _HTTPS
SECURE_HSTS_PRELOAD = _HTTPS
if _HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
        # faiss logs at INFO which CPU build it tried ("Could not load library … ModuleNotFoundError") on
        # every import; harmless, but it reads like an error at the top of every command's output.
        "faiss.loader": {"level": "WARNING"},
    },
}
