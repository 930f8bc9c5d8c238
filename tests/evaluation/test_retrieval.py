"""Retriever evaluation: recall@K and average rank, checked by hand."""

from relik_jax.evaluation.retrieval import average_rank, evaluate_retrieval


def test_recall_and_average_rank_by_hand():
    preds = [["a", "b", "c", "d"], ["x", "y", "z", "w"], ["m", "n", "o", "p"]]
    gold = [["b", "d"], ["w", "w"], ["q"]]  # duplicate gold counts once for recall (set), as the reference
    assert evaluate_retrieval(preds, gold, ks=(1, 2, 4))["recall@2"] == 1 / 4
    # ranks of found gold labels: b→2, d→4, w→4, w→4 (each gold occurrence) → 14/4
    assert average_rank(preds, gold, 4) == 14 / 4
    assert evaluate_retrieval(preds, gold, ks=(1, 4)) == {
        "recall@1": 0.0,
        "recall@4": 0.75,
        "avg_ranking@4": 3.5,
    }
