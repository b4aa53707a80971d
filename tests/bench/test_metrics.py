"""The bench's ranking metrics and percentiles, on examples small enough to work out by hand."""

from __future__ import annotations

import math

import pytest

from bench import metrics

RELEVANT = {"b": 1.0, "d": 1.0}  # two relevant documents; "d" is never retrieved


def test_ndcg_at_10_discounts_a_relevant_document_by_its_rank():
    # DCG = 1/log2(3) (b at rank 2); ideal DCG = 1 + 1/log2(3) (both relevant at ranks 1, 2).
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert metrics.ndcg_at_k(["a", "b", "c"], RELEVANT, 10) == pytest.approx(expected)
    assert expected == pytest.approx(0.3869, abs=1e-4)


def test_ndcg_is_one_for_the_ideal_ranking_and_zero_without_hits():
    assert metrics.ndcg_at_k(["d", "b", "a"], RELEVANT, 10) == pytest.approx(1.0)
    assert metrics.ndcg_at_k(["a", "c"], RELEVANT, 10) == 0.0
    assert metrics.ndcg_at_k(["a", "b"], RELEVANT, 1) == 0.0  # b falls outside the top 1


def test_recall_counts_the_share_of_relevant_documents_within_the_cutoff():
    ranking = ["a", "b", "c", "d"]
    assert metrics.recall_at_k(ranking, RELEVANT, 1) == 0.0
    assert metrics.recall_at_k(ranking, RELEVANT, 2) == 0.5
    assert metrics.recall_at_k(ranking, RELEVANT, 100) == 1.0


def test_mrr_is_the_reciprocal_rank_of_the_first_relevant_document():
    assert metrics.mrr_at_k(["a", "c", "d", "b"], RELEVANT, 10) == pytest.approx(1 / 3)
    assert metrics.mrr_at_k(["a", "c", "d"], RELEVANT, 2) == 0.0


def test_evaluate_averages_over_judged_queries_and_scores_a_missing_ranking_as_zero():
    qrels = {"q1": {"x": 1.0}, "q2": {"y": 1.0}}
    scores = metrics.evaluate({"q1": ["x", "z"]}, qrels)
    assert scores == {"ndcg@10": 0.5, "recall@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}


def test_collapse_keeps_each_document_at_its_best_chunk():
    assert metrics.collapse(["d1", "d1", "d2", "d1", "d3", "d2"]) == ["d1", "d2", "d3"]


def test_percentiles_interpolate_between_closest_ranks_like_numpy():
    assert metrics.median([4, 1, 3, 2]) == 2.5
    assert metrics.percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert metrics.percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        metrics.percentile([], 50)


def test_overlap_compares_an_approximate_top_k_with_the_exact_one():
    assert metrics.overlap_at_k([1, 2, 9, 4], [1, 2, 3, 4], 4) == 0.75
    assert metrics.overlap_at_k([5, 6], [1, 2], 2) == 0.0


def test_paired_bootstrap_brackets_the_mean_difference_and_is_exact_for_a_constant_shift():
    shifted = metrics.paired_bootstrap([0.6, 0.8, 1.0], [0.5, 0.7, 0.9])
    assert shifted["mean"] == pytest.approx(0.1)
    assert shifted["low"] == pytest.approx(0.1) and shifted["high"] == pytest.approx(0.1)
    mixed = metrics.paired_bootstrap([1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0])
    assert mixed["mean"] == pytest.approx(0.25)
    assert mixed["low"] < 0.25 < mixed["high"]
