"""Pure helpers for the bench: ranking metrics and summary statistics.

No Django, no database: these are imported by ``tests/bench`` and checked on hand-computed
examples. Conventions follow BEIR/MTEB (pytrec_eval): graded relevance from the qrels, nDCG
with the ``rel / log2(rank + 1)`` gain, an ideal ranking built from the judged documents, and a
query's metrics averaged over all queries that have judgments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence


def collapse(ranked_ids: Iterable[str]) -> list[str]:
    """Keep each id at its best (first) position: chunk hits → document ranking."""
    seen: set[str] = set()
    ranking: list[str] = []
    for item in ranked_ids:
        if item not in seen:
            seen.add(item)
            ranking.append(item)
    return ranking


def ndcg_at_k(ranking: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    """Normalised discounted cumulative gain of the top ``k`` of ``ranking``.

    ``relevant`` maps judged document ids to their gain (documents absent from it count 0).
    Returns 0.0 when nothing is judged relevant.
    """
    dcg = sum(relevant.get(doc, 0.0) / math.log2(rank + 1) for rank, doc in enumerate(ranking[:k], start=1))
    ideal_gains = sorted((gain for gain in relevant.values() if gain > 0), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 1) for rank, gain in enumerate(ideal_gains, start=1))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranking: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    """Share of the relevant documents found in the top ``k`` (0.0 when none is relevant)."""
    wanted = {doc for doc, gain in relevant.items() if gain > 0}
    if not wanted:
        return 0.0
    return len(wanted.intersection(ranking[:k])) / len(wanted)


def mrr_at_k(ranking: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    """Reciprocal rank of the first relevant document in the top ``k``, else 0.0."""
    for rank, doc in enumerate(ranking[:k], start=1):
        if relevant.get(doc, 0.0) > 0:
            return 1.0 / rank
    return 0.0


def evaluate(rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@10, Recall@100 and MRR@10 over every judged query.

    A judged query missing from ``rankings`` counts as an empty ranking (all zeros).
    """
    names = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
    totals = dict.fromkeys(names, 0.0)
    judged = [query for query, rels in qrels.items() if any(gain > 0 for gain in rels.values())]
    for query in judged:
        ranking = rankings.get(query, [])
        relevant = qrels[query]
        totals["ndcg@10"] += ndcg_at_k(ranking, relevant, 10)
        totals["recall@10"] += recall_at_k(ranking, relevant, 10)
        totals["recall@100"] += recall_at_k(ranking, relevant, 100)
        totals["mrr@10"] += mrr_at_k(ranking, relevant, 10)
    count = len(judged) or 1
    return {name: total / count for name, total in totals.items()}


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) with linear interpolation between closest ranks.

    Same definition as ``numpy.percentile``'s default; raises ``ValueError`` on no values.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0-100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def overlap_at_k(found: Sequence, truth: Sequence, k: int) -> float:
    """Recall of an approximate top-``k`` against the exact top-``k`` (1.0 = identical sets)."""
    expected = set(truth[:k])
    if not expected:
        return 1.0
    return len(expected.intersection(found[:k])) / len(expected)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, resamples: int = 2000, seed: int = 0) -> dict:
    """Mean of the paired differences ``a - b`` and its 95 % bootstrap interval.

    ``a`` and ``b`` are per-query scores of two systems on the same queries, in the same order.
    Resampling the queries (with replacement, a fixed seed) tells whether a difference between
    two configurations is larger than what the choice of queries alone would produce.
    """
    import random

    if len(a) != len(b) or not a:
        raise ValueError("paired_bootstrap needs two equally long, non-empty score lists")
    differences = [x - y for x, y in zip(a, b, strict=True)]
    count = len(differences)
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(differences, k=count)) / count for _ in range(resamples))
    return {
        "mean": sum(differences) / count,
        "low": percentile(means, 2.5),
        "high": percentile(means, 97.5),
    }
