"""Evaluation measures on hand-computed cases."""

import pytest

from relik_jax.evaluation.metrics import NME, el_strong_matching, re_matching, recall_at_k


def test_el_strong_matching_hand_case():
    gold = [[(0, 5, "Paris"), (10, 16, "France"), (20, 25, NME)], [(3, 8, "Rome")]]
    pred = [[(0, 5, "Paris"), (10, 16, "French_language"), (20, 25, "Berlin"), (30, 33, NME)], []]
    m = el_strong_matching(pred, gold)
    # InKB gold = Paris, France, Rome (3); predictions without NME = Paris, French_language, Berlin (3); TP = 1.
    assert (m["tp"], m["fp"], m["fn"]) == (1, 2, 2)
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(1 / 3)
    # Spans: predicted {(0,5),(10,16),(20,25)} vs gold {(0,5),(10,16),(3,8)}: TP 2, FP 1, FN 1.
    assert (m["span_tp"], m["span_fp"], m["span_fn"]) == (2, 1, 1)
    assert m["span_f1"] == pytest.approx(2 / 3)


def test_re_boundaries_vs_strict():
    s, o = (0, 2, "Obama"), (5, 6, "Hawaii")
    gold = [[(s, "born_in", o), ((7, 9, "X"), "works_for", (10, 12, "Y"))]]
    pred = [[((0, 2, NME), "born_in", (5, 6, "Hawaii")), ((7, 9, "X"), "lives_in", (10, 12, "Y"))]]
    m = re_matching(pred, gold)
    # Boundaries: born_in matches (labels ignored), lives_in does not: P = R = F1 = 1/2.
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 1) and m["f1"] == pytest.approx(0.5)
    # Strict: the subject label differs (NME vs Obama), so nothing matches.
    assert m["strict_tp"] == 0 and m["strict_f1"] == 0.0
    assert m["span_f1"] == pytest.approx(1.0)


def test_recall_at_k():
    ranked = [["a", "b", "c"], ["x", "y", "z"]]
    gold = [["b"], ["z", "q"]]
    r = recall_at_k(ranked, gold, [1, 2, 3])
    assert r == {"recall@1": 0.0, "recall@2": pytest.approx(1 / 3), "recall@3": pytest.approx(2 / 3)}
