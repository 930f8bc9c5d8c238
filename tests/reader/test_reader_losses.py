"""Reader training losses: torch's CE/BCE semantics, and the reference model's own training loss on the same
labelled batch (reference checkpoints from the fixtures, run in the reference venv with dropout off)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from reference_harness import ensure_reference_venv

from relik_jax.reader.losses import bce_with_logits, cross_entropy, loss, value_and_grad
from relik_jax.reader.reader import Reader
from relik_jax.text.windows import Window

SCRIPT = Path(__file__).resolve().parents[1] / "reference" / "reader_losses_ref.py"


def test_cross_entropy_and_bce_match_torch():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 4)).astype(np.float32) * 3
    labels = rng.integers(0, 4, size=(3, 5))
    labels[0, :2] = -100
    ref = torch.nn.CrossEntropyLoss()(torch.tensor(logits).reshape(-1, 4), torch.tensor(labels).reshape(-1))
    np.testing.assert_allclose(float(cross_entropy(jnp.asarray(logits), jnp.asarray(labels))), float(ref), rtol=1e-6)
    assert float(cross_entropy(jnp.asarray(logits), jnp.full((3, 5), -100))) == 0.0
    x = rng.normal(size=(4, 6)).astype(np.float32) * 5
    y = (rng.random((4, 6)) > 0.5).astype(np.float32)
    mask = rng.random((4, 6)) > 0.3
    ref = torch.nn.BCEWithLogitsLoss()(torch.tensor(x)[torch.tensor(mask)], torch.tensor(y)[torch.tensor(mask)])
    np.testing.assert_allclose(float(bce_with_logits(jnp.asarray(x), jnp.asarray(y), jnp.asarray(mask))), float(ref),
                               rtol=1e-6)


def _reference_losses(reference_dir: Path, jobs: list[tuple[str, dict]], tmp_path: Path) -> list[dict[str, float]]:
    """One reference-venv process for every (reader name, reference-format batch) job (torch import is slow)."""
    python = ensure_reference_venv()
    args = []
    for k, (name, arrays) in enumerate(jobs):
        path = tmp_path / f"batch_{k}.npz"
        np.savez(path, **arrays)
        args += [f"readers/{name}", str(path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(python), str(SCRIPT), *args], cwd=reference_dir, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, f"reference loss script failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rows(reference_dir: Path, task: str, name: str, n: int = 2):
    """The first n rows with the same symbol counts (the reference batches only such rows together)."""
    windows = json.loads((reference_dir / task / name / "windows_input.json").read_text())
    reader = Reader.from_folder(reference_dir / "readers" / name)
    rows = reader.rows([Window.from_dict(w) for w in windows[:8]])
    groups: dict[tuple, list] = {}
    for r in rows:
        masks = ("special_symbols_mask",) if task == "el" else ("relation_symbols_mask", "entity_symbols_mask")
        groups.setdefault(tuple(int(getattr(r, m).sum()) for m in masks), []).append(r)
    group = next(g for g in groups.values() if len(g) >= n)
    return reader, group[:n]


def _pad(rows, name, fill, dtype, length):
    out = np.full((len(rows), length), fill, dtype=dtype)
    for b, r in enumerate(rows):
        out[b, : len(r)] = getattr(r, name)
    return out


def _gold(row, rng, n: int, max_class: int):
    """n random gold mentions (start, end, class) over the row's text positions, sorted, with a shared start."""
    text = np.arange(1, 1 + len(row.text))
    starts = np.sort(rng.choice(text[:-2], size=n - 1, replace=False))
    out = []
    for s in starts:
        out.append((int(s), int(min(s + rng.integers(0, 3), text[-1])), int(rng.integers(1, max_class))))
    s, e, _ = out[0]
    out.append((s, min(e + 1, int(text[-1])), int(rng.integers(1, max_class))))  # nested: same start, later end
    return sorted(set((s, e) for s, e, _ in out)), {(s, e): c for s, e, c in out}


def _common(rows, length):
    return {
        "input_ids": _pad(rows, "input_ids", 0, np.int64, length),
        "attention_mask": np.stack([(np.arange(length) < len(r)).astype(np.int64) for r in rows]),
        "token_type_ids": _pad(rows, "token_type_ids", 0, np.int64, length),
        "prediction_mask": _pad(rows, "prediction_mask", 1, np.int64, length),
    }


def _label_arrays(rows, golds, length, preceding: bool, typed_classes=None):
    """Reference-format and our static-shape labels for gold mentions."""
    b = len(rows)
    common = _common(rows, length)
    pm = common["prediction_mask"].astype(bool)
    distinct = [sorted({s for s, _ in g[0]}) for g in golds]
    n_s = max(len(d) for d in distinct)
    n_m = max(len(g[0]) for g in golds)
    ref_start = np.zeros((b, length), np.int64)
    ref_end = np.full((b, n_s, length), -100, np.int64)
    our_start = np.zeros((b, length), np.int32)
    starts = np.zeros((b, n_s), np.int32)
    start_valid = np.zeros((b, n_s), bool)
    our_end = np.full((b, n_s, length), -100, np.int32)
    m_start = np.zeros((b, n_m), np.int32)
    m_end = np.zeros((b, n_m), np.int32)
    m_valid = np.zeros((b, n_m), bool)
    classes = np.full((b, n_m), -100, np.int32)
    for r, ((spans, cls), ds) in enumerate(zip(golds, distinct, strict=True)):
        for k, s in enumerate(ds):
            row = np.zeros(length, np.int64)
            if preceding:
                row[:s] = -100
            ends = [(e, cls[(s, e)]) for s2, e in spans if s2 == s]
            for e, c in ends:
                row[e] = c
            row[pm[r]] = -100
            ref_end[r, k] = row
            our_end[r, k] = np.where(row > 0, 1, row)
            starts[r, k], start_valid[r, k] = s, True
            ref_start[r, s] = ends[-1][1]
            our_start[r, s] = 1
        for k, (s, e) in enumerate(spans):
            m_start[r, k], m_end[r, k], m_valid[r, k], classes[r, k] = s, e, True, cls[(s, e)]
    ref_start[pm] = -100
    our_start[pm] = -100
    ref = {**common, "start_labels": ref_start, "end_labels": ref_end}
    ours = {**{k: v.astype(np.int32) for k, v in common.items()}, "prediction_mask": pm, "start_labels": our_start,
            "starts": starts, "start_valid": start_valid, "end_labels": our_end, "mention_start": m_start,
            "mention_end": m_end, "mention_valid": m_valid, "ed_labels": classes}
    return ref, ours


def _positions(masks, width):
    pos = np.zeros((len(masks), width), np.int32)
    valid = np.zeros((len(masks), width), bool)
    for b, m in enumerate(masks):
        idx = np.flatnonzero(m)
        pos[b, : len(idx)], valid[b, : len(idx)] = idx, True
    return pos, valid


def _compare(ours: dict, ref: dict[str, float], keys: list[str]):
    total, parts = ours
    for k in keys:
        np.testing.assert_allclose(float(parts[k]), ref[k], rtol=1e-4, atol=1e-5, err_msg=k)
    np.testing.assert_allclose(float(total), ref["loss"], rtol=1e-4, atol=1e-5)


def _el_case(reference_dir: Path):
    name = sorted(json.loads((reference_dir / "manifest.json").read_text())["el"])[0]
    reader, rows = _rows(reference_dir, "el", name)
    rng = np.random.default_rng(0)
    n_sym = int(rows[0].special_symbols_mask.sum())
    golds = [_gold(r, rng, 4, n_sym) for r in rows]
    length = max(len(r) for r in rows)
    ref, ours = _label_arrays(rows, golds, length, preceding=False)
    ref["special_symbols_mask"] = _pad(rows, "special_symbols_mask", False, bool, length)
    ours["symbol_pos"], ours["symbol_valid"] = _positions([r.special_symbols_mask for r in rows], n_sym)
    return name, reader, ref, ours, ["ned_start_loss", "ned_end_loss", "ed_loss"]


def _triplet_case(reference_dir: Path, task: str):
    names = sorted(n for n in json.loads((reference_dir / "manifest.json").read_text())["triplet"]
                   if n.startswith(task))
    name = names[0]
    reader, rows = _rows(reference_dir, task, name)
    typed = reader.cfg.entity_type_loss
    rng = np.random.default_rng(1)
    n_rel = int(rows[0].relation_symbols_mask.sum())
    n_typ = int(rows[0].entity_symbols_mask.sum())
    golds = [_gold(r, rng, 4, 5) for r in rows]
    length = max(len(r) for r in rows)
    ref, ours = _label_arrays(rows, golds, length, preceding=True)
    n_m = ours["mention_start"].shape[1]
    rel = np.full((len(rows), n_m, n_m, n_rel), -100, np.int64)
    types = np.full((len(rows), n_m, n_typ + n_rel), -100, np.float32)
    for b, (spans, _) in enumerate(golds):
        e = len(spans)
        rel[b, :e, :e] = (rng.random((e, e, n_rel)) < 0.2).astype(np.int64)
        types[b, :e] = 0
        for i in range(e):
            types[b, i, int(rng.integers(0, n_typ or 1))] = 1
    ref["relation_labels"] = rel
    ref["special_symbols_mask"] = _pad(rows, "relation_symbols_mask", False, bool, length)
    ref["special_symbols_mask_entities"] = (_pad(rows, "entity_symbols_mask", False, bool, length) if typed
                                            else ref["special_symbols_mask"])
    if typed:
        ref["disambiguation_labels"] = types
    ours["rel_pos"], ours["rel_valid"] = _positions([r.relation_symbols_mask for r in rows], n_rel)
    ours["type_pos"], ours["type_valid"] = _positions([r.entity_symbols_mask for r in rows], max(n_typ, 1))
    ours["relation_labels"] = rel.astype(np.int32)
    ours["type_labels"] = np.maximum(types[..., : max(n_typ, 1)], 0)
    keys = ["ned_start_loss", "ned_end_loss", "re_loss"] + (["ned_type_loss"] if typed else [])
    return name, reader, ref, ours, keys


@pytest.fixture(scope="module")
def cases(reference_dir, tmp_path_factory):
    built = {"el": _el_case(reference_dir), "re": _triplet_case(reference_dir, "re"),
             "cie": _triplet_case(reference_dir, "cie")}
    expected = _reference_losses(reference_dir, [(c[0], c[2]) for c in built.values()],
                                 tmp_path_factory.mktemp("losses"))
    return {task: (*case, exp) for (task, case), exp in zip(built.items(), expected, strict=True)}


@pytest.mark.parametrize("task", ["el", "re", "cie"])
def test_loss_matches_reference(cases, task):
    name, reader, _, ours, keys, expected = cases[task]
    batch = {k: jnp.asarray(v) for k, v in ours.items()}
    if task == "el":  # the jitted value-and-grad once (its compilation is the slow part on CPU)
        (total, parts), grads = value_and_grad(reader.model, batch)
        norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
        assert np.isfinite(norms).all() and max(norms) > 0
    else:
        total, parts = loss(reader.model, batch)
    _compare((total, parts), expected, keys)
    print(f"{task} ({name}): ours {float(total):.6f} reference {expected['loss']:.6f}")
