#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Build the real Dockerfile with podman: `make image` (IMAGE=localhost/kb:dev by default).
#
# Where no registry can be reached (this project's CI machine), the base images are local
# stand-ins built from Debian packages by bases.sh; set PYTHON_IMAGE to build on the official
# python:3.11-slim-bookworm instead. torch's CPU build comes from PyTorch's CPU index when it
# answers, otherwise from the host's pip find-links folders (passed to the build).
set -euo pipefail

HERE="$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)"
ROOT="$(CDPATH='' cd -- "$HERE/../.." && pwd)"
IMAGE="${IMAGE:-localhost/kb:dev}"
# shellcheck source=podman-flags.sh
. "$HERE/podman-flags.sh"

if [ -z "${PYTHON_IMAGE:-}" ]; then
    "$HERE/bases.sh"
    PYTHON_IMAGE=localhost/kb-standin/python:3.11-bookworm
fi

# Docker's image format: podman's default (OCI) ignores the Dockerfile's SHELL (bash -o pipefail).
args=(--format docker --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
if [ -z "${TORCH_INDEX_URL:-}" ]; then
    if python3 -c 'import urllib.request as u; u.urlopen("https://download.pytorch.org/whl/cpu/", timeout=10)' 2>/dev/null; then
        TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
    else
        TORCH_INDEX_URL=https://pypi.org/simple
        echo "==> PyTorch's index does not answer: torch's CPU build comes from the host's pip find-links"
    fi
fi
args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")

# The host's find-links folders (where a torch CPU wheel may lie), from its environment or its
# pip configuration, mounted into the build read-only. Everything else comes from PyPI.
pip_setting() {
    printenv "PIP_$1" || python3 -m pip config get "global.$2" 2>/dev/null || true
}
find_links="$(pip_setting FIND_LINKS find-links)"
args+=(--build-arg "PIP_FIND_LINKS=$find_links")
for source in $find_links; do
    path="${source#file://}"
    if [ "${path#/}" != "$path" ] && [ -e "$path" ]; then args+=(--volume "$path:$path:ro"); fi
done

log="${IMAGE_BUILD_LOG:-$ROOT/var/image-build.log}"
mkdir -p "$(dirname "$log")"
echo "==> building $IMAGE from Dockerfile on $PYTHON_IMAGE (cached layers are reused; log: $log)"
start=$(date +%s)
# shellcheck disable=SC2086
if ! podman build $PODMAN_FLAGS "${args[@]}" --tag "$IMAGE" --file "$ROOT/Dockerfile" "$ROOT" > "$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "the image build failed: the whole log is in $log" >&2
    exit 1
fi
echo "==> built $IMAGE in $(($(date +%s) - start)) s ($(grep -c -- '--> Using cache' "$log" || true) cached steps)"
