"""The benchmark report's ingestion section states every target as a ratio from one result."""

from __future__ import annotations

from bench import report

RESULT = {
    "measured_at": "20261202T190000",
    "path": "POST /api/v1/documents/ → queue → worker",
    "backend": "sentence-transformers/all-MiniLM-L6-v2@onnx-int8",
    "batch_size": 32,
    "ingest_batch_documents": 64,
    "ingest_batch_chunks": 512,
    "lease_seconds": 30,
    "q_workers": 1,
    "uploaders": 4,
    "cold_start_seconds": 3.2,
    "corpus": {
        "documents": 5183,
        "chunks": 9887,
        "seconds": 180.0,
        "uploads_seconds": 120.0,
        "worker_span_seconds": 170.0,
        "chunks_per_second": 54.9,
        "raw_over_pipeline": 0.92,
        "raw_over_worker_span": 0.97,
        "pipeline_over_seed": 0.4,
    },
    "raw": {"chunks": 9887, "seconds": 165.6, "chunks_per_second": 59.7},
    "seed": {"documents": 5183, "chunks": 9100, "seconds": 450.0, "chunks_per_second": 20.2},
    "batch": {
        "documents": 2000,
        "chunks": 3800,
        "seconds": 38.0,
        "uploads_seconds": 30.0,
        "pipeline_over_torch": 0.45,
        "torch_fp32_encode": {"texts": 2000, "seconds": 84.4},
    },
    "queued": {"documents": 2000, "chunks": 3800, "worker_seconds": 40.0, "raw_seconds": 36.4, "raw_over_worker": 0.91},
    "recovery": {"chunks": 420, "killed_at_chunk": 64, "seconds_until_ready": 47.5},
    "worker_peak_rss_mb": 610.0,
    "worker_tree_peak_rss_mb": 900.0,
    "web_peak_rss_mb": 240.0,
}


def test_the_ingestion_section_reports_each_target_as_a_ratio():
    text = "\n".join(report._ingestion({"started": "20261202T190000"}, RESULT))
    assert "**0.40×** (target ≤ 0.5)" in text
    assert "**0.92** raw/pipeline (target ≥ 0.9)" in text
    assert "**0.45×** (target ≤ 0.5)" in text
    assert "**47.5 s** after the kill" in text
    assert "Worker peak RSS: 610.0 MB" in text and "web (daphne) peak RSS: 240.0 MB" in text
    assert "SciFact, 5,183 one-abstract documents" in text
    assert "the worker alone, on 2,000 documents already uploaded" in text and "**0.91** raw/worker" in text
    # Uploads quicker than raw encode leave the end-to-end ratio free to reach 1.
    assert "could not pass" not in text


def test_a_batch_uploaded_several_files_per_request_gets_its_own_row():
    many = {**RESULT["batch"], "files_per_request": 100, "seconds": 30.0, "uploads_seconds": 6.0}
    text = "\n".join(report._ingestion({}, {**RESULT, "batch_many": {**many, "pipeline_over_torch": 0.36}}))
    assert "| batch of 2,000 one-abstract documents, one per request | kb: 38.0 s (uploads 30.0 s) |" in text
    assert "| batch of 2,000 one-abstract documents, 100 per request | kb: 30.0 s (uploads 6.0 s) |" in text
    assert "**0.36×** (target ≤ 0.5)" in text


def test_uploads_slower_than_raw_encode_bound_the_end_to_end_ratio_and_the_report_says_so():
    result = {**RESULT, "corpus": {**RESULT["corpus"], "uploads_seconds": 200.0}}
    text = "\n".join(report._ingestion({"started": "20261202T190000"}, result))
    assert "raw/pipeline end to end could not pass 0.83 here" in text


def test_a_result_of_the_earlier_benchmark_asks_for_a_new_run():
    old = {"rounds": [], "ratio_median": 0.87}
    assert "Re-run `make bench PART=ingestion`" in "\n".join(report._ingestion({}, old))
