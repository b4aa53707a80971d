#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Build local stand-ins for the base images the Dockerfile and the Postgres StatefulSet name,
# from Debian packages (mmdebstrap), for machines that cannot pull from a registry:
#
#   kb-standin/python:3.11-bookworm   for python:3.11-slim-bookworm (Debian's Python 3.11)
#   kb-standin/postgres:17-pgvector   for pgvector/pgvector: Debian trixie's PostgreSQL 17 with
#                                     its pgvector package, run the way the official image runs
#                                     (POSTGRES_USER/_DB/_PASSWORD_FILE, PGDATA, user 999)
#
# An image that exists already is kept (`--force` rebuilds both). Needs root, mmdebstrap and
# podman; `make image` calls it. Debian's mirror is $DEBIAN_MIRROR.
set -eu

HERE="$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PYTHON_IMAGE="${PYTHON_IMAGE:-localhost/kb-standin/python:3.11-bookworm}"
POSTGRES_IMAGE="${POSTGRES_IMAGE:-localhost/kb-standin/postgres:17-pgvector}"
FORCE="${1:-}"
# shellcheck source=podman-flags.sh
. "$HERE/podman-flags.sh"

missing() {
    [ "$FORCE" = "--force" ] || ! podman image exists "$1"
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if missing "$PYTHON_IMAGE"; then
    echo "==> building $PYTHON_IMAGE from Debian bookworm packages"
    # The host's certificate bundle is trusted inside as well, so that pip in the image build
    # works behind the same TLS-inspecting proxy as the host (update-ca-certificates keeps
    # files under /usr/local/share/ca-certificates whenever it runs again).
    # The hooks' "$1" (the new root) is expanded by mmdebstrap, not here.
    # shellcheck disable=SC2016
    mmdebstrap --quiet --variant=minbase \
        --include=python3,python3-venv,python-is-python3,ca-certificates \
        --customize-hook='copy-in /etc/ssl/certs/ca-certificates.crt /usr/local/share/ca-certificates' \
        --customize-hook='mv "$1/usr/local/share/ca-certificates/ca-certificates.crt" "$1/usr/local/share/ca-certificates/host.crt"' \
        --customize-hook='chroot "$1" update-ca-certificates' \
        --customize-hook='rm -rf "$1/var/lib/apt/lists"/*' \
        bookworm "$work/python.tar" "$MIRROR"
    podman import --quiet --change 'CMD ["python3"]' "$work/python.tar" "$PYTHON_IMAGE" >/dev/null
    rm -f "$work/python.tar"
fi

if missing "$POSTGRES_IMAGE"; then
    echo "==> building $POSTGRES_IMAGE from Debian trixie packages"
    # shellcheck disable=SC2016
    mmdebstrap --quiet --variant=minbase \
        --include=postgresql-17,postgresql-17-pgvector \
        --customize-hook='rm -rf "$1/var/lib/apt/lists"/*' \
        trixie "$work/postgres.tar" "$MIRROR"
    podman import --quiet "$work/postgres.tar" localhost/kb-standin/postgres-debian:17 >/dev/null
    rm -f "$work/postgres.tar"
    # shellcheck disable=SC2086
    podman build $PODMAN_FLAGS --quiet --file "$HERE/postgres.Containerfile" \
        --build-arg BASE=localhost/kb-standin/postgres-debian:17 --tag "$POSTGRES_IMAGE" "$HERE" >/dev/null
    podman rmi --force localhost/kb-standin/postgres-debian:17 >/dev/null
fi
