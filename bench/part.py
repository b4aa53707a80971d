"""Run one bench part in this process: ``python -m bench.part NAME --out FILE [options]``.

Started by ``python -m bench`` with ``DATABASE_URL`` pointing at the part's own database
(``kb_bench_<part>``). Prepares that database (the part may keep it, see SciFact's
``--reuse``), starts Django, migrates, runs the part, writes its figures as JSON to FILE and
drops the database again (SciFact's stays, for ``--reuse``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback

from bench.common import PARTS, recreate_database


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.part")
    parser.add_argument("part", choices=PARTS)
    parser.add_argument("--out", required=True)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--scales", default="10000,100000")
    parser.add_argument("--split", choices=("test", "train"), default="test")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    module = importlib.import_module(f"bench.{options.part}")
    database_url = os.environ["DATABASE_URL"]
    started = time.perf_counter()
    result: dict = {}
    status = 0
    try:
        if hasattr(module, "prepare"):
            prepared = module.prepare(database_url, options)
        else:
            recreate_database(database_url)
            prepared = {}
        from bench.common import setup_django

        setup_django()
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            server_version = cursor.fetchone()[0]
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
        result = module.run(options, prepared)
        result["postgres"] = {"server": server_version, "pgvector": row[0] if row else None}
    except KeyboardInterrupt:
        result = {"error": "interrupted"}
        status = 130
    except Exception as exc:
        traceback.print_exc()
        result = {**result, "error": f"{type(exc).__name__}: {exc}"}
        status = 1
    # BENCH_KEEP_DATABASE=1 keeps any part's database, to look into its query plans afterwards.
    if not getattr(module, "KEEP_DATABASE", False) and os.environ.get("BENCH_KEEP_DATABASE") != "1":
        _drop_database(database_url)
    result["seconds"] = round(time.perf_counter() - started, 1)
    with open(options.out, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=2, default=str)
    return status


def _drop_database(database_url: str) -> None:
    """Free the disk a part's data took (100k synthetic chunks are a few hundred MB)."""
    import contextlib

    from bench.common import drop_database

    with contextlib.suppress(Exception):
        from django.db import connections

        connections.close_all()
    try:
        drop_database(database_url)
    except Exception as exc:  # the figures matter more than the clean-up
        print(f"could not drop the bench database: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
