"""``python -m bench [--part NAME] [--reuse] [--quick]`` (``make bench PART=NAME``).

Runs the bench parts one after another, each in its own process and database (see
``bench/common.py``), writes every figure with the machine description to
``bench/results/<timestamp>.json`` and regenerates ``docs/benchmarks.md`` and its plot from
the latest result of each part. A part that fails is recorded with its error; the others
still run, and the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    BASE_DIR,
    PARTS,
    RESULTS_DIR,
    child_environment,
    database_name,
    machine,
    say,
    server_url,
    url_for_database,
)

# The order of a full run: the part whose figures other work waits on first.
ORDER = ("scifact", "retrieval", "ingestion", "backends", "streaming", "answers")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", action="append", choices=PARTS, help="run only this part (repeatable)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        default=os.environ.get("BENCH_REUSE", "").lower() in ("1", "true", "yes"),
        help="SciFact: keep the ingested corpus of an earlier run when it was built from the same data, "
        "code and settings (also BENCH_REUSE=1)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats and no sweeps (a smoke run)")
    parser.add_argument(
        "--scales",
        default=os.environ.get("BENCH_SCALES", "10000,100000"),
        help="retrieval: chunk counts to measure, comma-separated (default 10000,100000)",
    )
    parser.add_argument(
        "--split",
        choices=("test", "train"),
        default="test",
        help="SciFact: the query split to score (train: choose fusion settings without looking at test)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    parts = [part for part in ORDER if part in (options.part or ORDER)]
    started = time.strftime("%Y%m%dT%H%M%S")
    results: dict = {"started": started, "machine": machine(), "options": vars(options), "parts": {}}
    base_url = server_url()
    status = 0
    runs = [(part, options) for part in parts]
    if not options.part and options.split == "test":
        # A full run also scores SciFact's train split, on which the fusion weights were chosen
        # (the report shows it next to test), reusing the corpus the test run ingested.
        train = argparse.Namespace(**{**vars(options), "split": "train", "reuse": True})
        runs.insert(parts.index("scifact") + 1, ("scifact", train))
    for part, part_options in runs:
        name = part if part_options.split == "test" or part != "scifact" else f"scifact-{part_options.split}"
        say(f"==> bench part: {name}")
        part_result, part_status = run_part(part, base_url, part_options)
        results["parts"][name] = part_result
        if part_status:
            status = status or part_status
            say(f"==> {part} failed: {part_result.get('error')}")
        if part_status == 130:
            break
    results["finished"] = time.strftime("%Y%m%dT%H%M%S")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{started}.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    say(f"==> figures: {out.relative_to(BASE_DIR)}")
    from bench import report

    written = report.write_docs(RESULTS_DIR)
    for path in written:
        say(f"==> updated {Path(path).relative_to(BASE_DIR)}")
    return status


def run_part(part: str, base_url: str, options: argparse.Namespace) -> tuple[dict, int]:
    env = child_environment(url_for_database(base_url, database_name(part)))
    with tempfile.NamedTemporaryFile(prefix=f"bench-{part}-", suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    args = [
        sys.executable,
        "-m",
        "bench.part",
        part,
        "--out",
        str(out),
        "--scales",
        options.scales,
        "--split",
        options.split,
    ]
    if options.reuse:
        args.append("--reuse")
    if options.quick:
        args.append("--quick")
    process = subprocess.Popen(args, cwd=BASE_DIR, env=env)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        # The part got the same Ctrl-C; let it stop its servers and write what it has.
        code = process.wait()
        code = code or 130
    try:
        result = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        result = {"error": f"the part exited with code {code} and wrote no figures"}
    finally:
        out.unlink(missing_ok=True)
    if code and "error" not in result:
        result["error"] = f"exit code {code}"
    return result, code


if __name__ == "__main__":
    sys.exit(main())
