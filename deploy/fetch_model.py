"""Download a bigger GGUF model once, for the llm role: ``fetch_model.py``.

Run as an init container of the llm Deployment (``docker-entrypoint.sh fetch-model``).
Environment:

- ``LLM_MODEL_URL``: where to get the file (``https://``, e.g. a pre-signed S3 URL, or
  ``file://``). Empty: nothing to do; the server uses ``LLM_MODEL_PATH`` or the model shipped
  in the image.
- ``LLM_MODEL_PATH``: where to put it (on a volume). Required when ``LLM_MODEL_URL`` is set.
- ``LLM_MODEL_SHA256``: optional hex digest the file must have.

Contract: when the target exists (and matches the digest, if given) nothing is downloaded.
Otherwise the file is written to ``<path>.part`` and renamed into place only after the size
and digest check, so a killed or failed download never leaves a half file under the final
name. Exit status 0 on success; 1 with a message on stderr on any failure.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

CHUNK = 1024 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, target: Path, expected_sha256: str) -> None:
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    size = 0
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:  # noqa: S310
            while block := response.read(CHUNK):
                out.write(block)
                digest.update(block)
                size += len(block)
        if size == 0:
            raise ValueError("the download is empty")
        if expected_sha256 and digest.hexdigest() != expected_sha256:
            raise ValueError(f"sha256 mismatch: expected {expected_sha256}, got {digest.hexdigest()}")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    elapsed = max(time.monotonic() - started, 0.001)
    print(f"fetched {size / 1e6:.1f} MB to {target} in {elapsed:.0f}s", file=sys.stderr)


def main() -> int:
    url = os.environ.get("LLM_MODEL_URL", "").strip()
    if not url:
        print("LLM_MODEL_URL is empty: nothing to fetch", file=sys.stderr)
        return 0
    path = os.environ.get("LLM_MODEL_PATH", "").strip()
    if not path:
        print("LLM_MODEL_PATH must name the file to write when LLM_MODEL_URL is set", file=sys.stderr)
        return 1
    expected = os.environ.get("LLM_MODEL_SHA256", "").strip().lower()
    target = Path(path)
    try:
        if target.exists():
            if not expected or sha256_of(target) == expected:
                print(f"{target} is present: nothing to fetch", file=sys.stderr)
                return 0
            print(f"{target} does not match LLM_MODEL_SHA256: fetching it again", file=sys.stderr)
        target.parent.mkdir(parents=True, exist_ok=True)
        download(url, target, expected)
    except (OSError, ValueError) as exc:
        # Without the query string: a pre-signed URL carries its signature there.
        shown = urlsplit(url)._replace(query="", fragment="").geturl()
        reason = str(exc).replace(url, shown)
        if urlsplit(url).query:
            reason = reason.replace(urlsplit(url).query, "...")
        print(f"cannot fetch the model from {shown}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
