#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Build the real Dockerfile with podman: `make image` (IMAGE=localhost/kb:dev by default).
#
# Where no registry can be reached (this project's CI machine), the base images are local
# stand-ins built from Debian packages by bases.sh; set PYTHON_IMAGE to build on the official
# python:3.11-slim-bookworm instead. torch's CPU build comes from the host's pip find-links
# folders when one holds it (passed to the build), otherwise from PyTorch's CPU index.
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
# The host's find-links folders (where a torch CPU wheel may lie), from its environment or its
# pip configuration, mounted into the build read-only. Everything else comes from PyPI.
pip_setting() {
    printenv "PIP_$1" || python3 -m pip config get "global.$2" 2>/dev/null || true
}
find_links="$(pip_setting FIND_LINKS find-links)"
args+=(--build-arg "PIP_FIND_LINKS=$find_links")
torch_version="$(sed -n -E 's/^torch==([^ ;#]+).*/\1/p' "$ROOT/requirements.txt")"
local_torch=""
for source in $find_links; do
    path="${source#file://}"
    if [ "${path#/}" != "$path" ] && [ -e "$path" ]; then
        args+=(--volume "$path:$path:ro")
        if compgen -G "$path/torch-${torch_version}+cpu-*.whl" >/dev/null; then local_torch="$path"; fi
    fi
done
# torch's CPU build: from those folders when one holds it (PyPI stays the index then, and its
# CUDA build cannot match the pinned `+cpu`), else from PyTorch's CPU index.
if [ -z "${TORCH_INDEX_URL:-}" ] && [ -n "$local_torch" ]; then
    TORCH_INDEX_URL=https://pypi.org/simple
    echo "==> torch ${torch_version}+cpu comes from $local_torch"
fi
args+=(--build-arg "TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}")

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
