"""Retriever evaluation: recall@K and average rank of the gold passages (reference callbacks)."""

from __future__ import annotations

from collections.abc import Sequence

from relik_jax.data.retrieval import RetrievalSample
from relik_jax.evaluation import metrics
from relik_jax.retriever.encoder import Retriever
from relik_jax.retriever.index import DocumentIndex


def average_rank(predictions: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], k: int) -> float:
    """Mean 1-based rank of gold labels found in the top-k (reference `AvgRankingEvaluationCallback`)."""
    ranks = [
        list(p[:k]).index(g) + 1 for p, gs in zip(predictions, gold, strict=True) for g in gs if g in p[:k]
    ]
    return sum(ranks) / len(ranks) if ranks else 0.0


def evaluate_retrieval(
    predictions: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], ks: Sequence[int] = (1, 10, 50, 100)
) -> dict[str, float]:
    out = metrics.recall_at_k(predictions, gold, ks)
    out[f"avg_ranking@{max(ks)}"] = average_rank(predictions, gold, max(ks))
    return out


def retrieval_metrics(retriever: Retriever, index: DocumentIndex, samples: Sequence[RetrievalSample],
                      ks: Sequence[int], use_topics: bool = False) -> dict[str, float]:
    """Recall@K and average rank of `retriever` over `index` on `samples` (questions paired with their document
    topics when `use_topics`)."""
    topics = [s.doc_topic for s in samples] if use_topics else None
    queries = retriever.encode_questions([s.question for s in samples], topics, progress="Evaluating")
    _, rows = index.search(queries, max(ks))
    return evaluate_retrieval([list(r) for r in rows.tolist()], [s.positives for s in samples], ks)
