"""Candidate patches against relik 1.0.7: windows whose 100 candidates fill 2-3 reader rows.

Fixtures: tests/reference/make_patch_fixtures.py (the reference's span reader, `read(max_length=1000)` as `Relik`
calls it, on 58 windows per run; its per-patch predictions and merged spans). Each run's reader folder is a fixture
reader whose tokenizer_config.json says a model_max_length (512 / 384) SHORTER than the rows: 1.0.7's `read`
overwrites the dataset's min(1000, tokenizer length) with its `max_length`, so its rows reach ~1000 tokens anyway,
and ours must cut the candidates at the same places. Then every patch's predictions (token spans, titles, top-k
lists) and the merged window spans must be the reference's; among them spans predicted by several patches with
different titles, reversed-boundary ones (end token before the start token) and, with NME, NME titles overridden
by a later patch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from relik_jax.engine.buckets import Buckets
from relik_jax.labels import NME
from relik_jax.reader import decoding as dec
from relik_jax.reader.reader import Reader
from relik_jax.text.windows import Window

RUNS = ["nme-512", "no-nme-384"]


class PatchCase:
    def __init__(self, root: Path, run: str):
        self.stats = json.loads((root / "manifest.json").read_text())["runs"][run]
        self.windows = [Window.from_dict(w) for w in json.loads((root / "runs" / run / "windows_input.json")
                                                                .read_text())]
        self.expected = json.loads((root / "runs" / run / "predictions.json").read_text())
        buckets = Buckets(seq_lens=(256, 1024), text_lens=(128,), counts=(64, 256), token_budget=4096, max_rows=4)
        self.reader = Reader.from_folder(root / self.stats["reader_dir"], buckets=buckets,
                                         use_nme=self.stats["use_nme"])
        self.rows = self.reader.rows(self.windows)
        self.preds = self.reader.decode(len(self.windows), self.rows, self.reader.forward(self.rows))


@pytest.fixture(scope="module", params=RUNS)
def case(request, reference_patches_dir) -> PatchCase:
    return PatchCase(reference_patches_dir, request.param)


def _ref_patches(window: dict) -> list[dict]:
    return [window["patches"][k] for k in sorted(window["patches"], key=int)]


def test_candidates_split_as_the_reference(case):
    """Same rows: the same candidates in each patch, in order, for every window (the reference's budget is
    read()'s max_length, not the tokenizer's shorter model_max_length)."""
    limit = case.stats["tokenizer_model_max_length"]
    assert case.reader.info.model_max_length == limit  # the tokenizer does say the shorter length
    for i, ref in enumerate(case.expected):
        ours = [r.predictable_candidates for r in case.rows if r.window_index == i]
        want = [p["predictable_candidates"] for p in _ref_patches(ref)]
        assert [len(c) for c in ours] == [len(c) for c in want], f"window {i}: candidates per patch"
        assert ours == want, f"window {i}"
    assert max(len(r) for r in case.rows) > limit, "no row over the tokenizer's model_max_length"
    assert max(r.patch_offset for r in case.rows) >= 2


def test_patch_predictions_match(case):
    """Per patch: the predicted token spans with their titles and the top-k (title, probability) lists."""
    for p, ref in zip(case.preds, case.expected, strict=True):
        ref_patches = _ref_patches(ref)
        assert len(p.patches) == len(ref_patches), f"window {p.window_index}"
        for k, (patch, rp) in enumerate(zip(p.patches, ref_patches, strict=True)):
            where = f"window {p.window_index} patch {k}"
            assert {t: sorted(v) for t, v in patch.predicted_window_labels.items()} == {
                t: sorted(v) for t, v in rp["predicted_window_labels"].items()}, where
            ref_probs = {tuple(json.loads(s)): v for s, v in rp["span_title_probabilities"].items()}
            assert set(patch.span_title_probabilities) == set(ref_probs), where
            for span, tp in patch.span_title_probabilities.items():
                assert [t for t, _ in tp] == [t for t, _ in ref_probs[span]], f"{where} {span}"
                np.testing.assert_allclose([x for _, x in tp], [x for _, x in ref_probs[span]], atol=1e-4)


def test_merged_spans_match(case):
    """The merged window spans, and the merge rules exercised: spans predicted by several patches with different
    titles (reversed-boundary ones among them) and NME titles overridden by a later patch."""
    shared = reversed_shared = nme_overridden = 0
    for p, ref in zip(case.preds, case.expected, strict=True):
        assert sorted(list(s) for s in p.spans) == ref["predicted_spans"], f"window {p.window_index}"
        titles: dict[tuple[int, int], list[str]] = {}
        for patch in p.patches:
            for title, spans in patch.predicted_window_labels.items():
                for s, e in spans:
                    titles.setdefault((s, e), []).append(title)
        for (s, e), ts in titles.items():
            if len(set(ts)) > 1:
                shared += 1
                reversed_shared += e < s
                nme_overridden += ts[0] == NME
    assert shared == case.stats["with_different_titles"] > 0
    assert reversed_shared == case.stats["reversed_with_different_titles"] > 0
    assert nme_overridden == case.stats["nme_overridden"]
    assert nme_overridden > 0 or not case.stats["use_nme"]
    print(f"{shared} spans with several patch titles ({reversed_shared} reversed, {nme_overridden} NME overridden); "
          f"reference decision margins {case.stats['min_decision_margins']}")


@pytest.mark.parametrize("run", RUNS)
def test_merge_of_the_reference_patches(reference_patches_dir, run):
    """`merge_patches` on the reference's OWN per-patch predictions gives its merged spans (the merge alone, free of
    model arithmetic): patch order, the first non-NME title wins, NME is overridden, the first top-k list wins."""
    root = reference_patches_dir
    windows = [Window.from_dict(w) for w in json.loads((root / "runs" / run / "windows_input.json").read_text())]
    expected = json.loads((root / "runs" / run / "predictions.json").read_text())
    reader = Reader.from_folder(root / f"readers/{run}")
    texts = {r.window_index: r.text for r in reader.rows(windows)}
    for i, ref in enumerate(expected):
        patches = [dec.SpanPatch({t: [list(s) for s in v] for t, v in rp["predicted_window_labels"].items()},
                                 {tuple(json.loads(s)): v for s, v in rp["span_title_probabilities"].items()},
                                 rp["predictable_candidates"]) for rp in _ref_patches(ref)]
        labels, probs = dec.merge_patches(patches)
        spans, _ = dec.span_char_annotations(texts[i], labels, probs)
        assert sorted(list(s) for s in spans) == ref["predicted_spans"], f"window {i}"
