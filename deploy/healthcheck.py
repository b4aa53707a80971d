"""Container health check for the kb image: ``healthcheck.py ROLE``; exit 0 when healthy.

The image's HEALTHCHECK runs it (through ``docker-entrypoint.sh healthcheck``) and the
Kubernetes worker Deployment uses it as an exec probe. Standard library only, so a check
costs a few milliseconds and never imports Django.

- ``web``: ``GET /healthz`` on ``127.0.0.1:$PORT`` (8000) answers 200.
- ``llm``: llama_cpp.server answers ``GET /v1/models`` on ``$LLM_SERVER_PORT`` (8080) with 200,
  or 401 when it requires an API key (the probe has none); it only listens once the model
  is loaded.
- ``worker``: a ``manage.py worker`` (or plain ``manage.py qcluster``) process runs and is not a
  zombie or stopped.
- anything else (``migrate``, one-off commands): healthy; the process's exit status tells.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

TIMEOUT = 4.0


def check_web() -> str | None:
    url = f"http://127.0.0.1:{os.environ.get('PORT') or '8000'}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310 - fixed http URL
            if response.status != 200:
                return f"{url} answered {response.status}"
    except OSError as exc:
        return f"{url}: {exc}"
    return None


def check_llm() -> str | None:
    url = f"http://127.0.0.1:{os.environ.get('LLM_SERVER_PORT') or '8080'}/v1/models"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT):  # noqa: S310 - fixed http URL
            return None
    except urllib.error.HTTPError as exc:
        # 401: the server answers but wants the API key, which a probe does not send.
        return None if exc.code == 401 else f"{url} answered {exc.code}"
    except OSError as exc:
        return f"{url}: {exc}"


def check_worker() -> str | None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # the process ended while we looked
        worker = b"manage.py" in b" ".join(cmdline) and (b"worker" in cmdline or b"qcluster" in cmdline)
        if worker and state not in {"Z", "T", "X"}:
            return None
    return "no running worker (manage.py worker) process"


CHECKS = {"web": check_web, "llm": check_llm, "worker": check_worker}


def main(argv: list[str]) -> int:
    role = argv[1] if len(argv) > 1 else "unknown"
    check = CHECKS.get(role)
    problem = check() if check else None
    if problem:
        print(f"unhealthy ({role}): {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
