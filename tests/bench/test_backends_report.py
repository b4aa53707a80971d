"""The benchmark report's backends section: one row per engine, ratios and deltas against torch."""

from __future__ import annotations

from bench import report

RUN = {"started": "20261202T190000", "machine": {"cpu": "AMD EPYC", "cores_usable": 2}}


def _entry(backend: str, ratio: float, ndcg: float, delta: dict | None, rss: dict) -> dict:
    return {
        "backend": backend,
        "texts_per_s": 6.5 * ratio,
        "ratio_to_torch": ratio,
        "cosine_to_torch_min": 0.9918 if backend == "onnx" else 1.0,
        "cosine_to_torch_mean": 0.99442 if backend == "onnx" else 1.0,
        "ndcg@10": ndcg,
        "delta_ndcg@10_vs_torch": delta,
        "web_process": rss,
    }


RESULT = {
    "seconds": 300.0,
    "data": {"speed_texts": 500, "corpus": 5183, "queries": 300, "subset": False},
    "batch_size": 32,
    "rounds": 2,
    "default_backend": "openvino",
    "backends": [
        _entry("torch", 1.0, 0.645, None, {"rss_mb": 550, "torch_imported": True}),
        _entry("onnx", 2.08, 0.6447, {"mean": -0.0003, "low": -0.008, "high": 0.007}, {"rss_mb": 184}),
        _entry("openvino", 3.05, 0.6463, {"mean": 0.0013, "low": 0.0, "high": 0.0038}, {"error": "boom"}),
    ],
}


def test_the_backends_section_shows_each_engine_against_torch():
    text = "\n".join(report._backends(RUN, RESULT))
    assert "| `torch` | 6.5 | 1.00× | 1.0000 / 1.0000 | 0.645 | (reference) | 550 MB, torch loaded |" in text
    onnx = "| `onnx` | 13.5 | 2.08× | 0.9944 / 0.9918 | 0.645 | -0.000 [-0.008, +0.007] | 184 MB, torch not loaded |"
    assert onnx in text
    assert "| `openvino` (default) | 19.8 | 3.05× |" in text and "| boom |" in text
    assert "SUBSET" not in text and "over 5,183 abstracts for 300 test queries" in text


def test_a_quick_run_on_a_subset_says_so():
    quick = {**RESULT, "data": {**RESULT["data"], "subset": True, "corpus": 783}}
    assert "(SUBSET: judged abstracts plus distractors)" in "\n".join(report._backends(RUN, quick))
