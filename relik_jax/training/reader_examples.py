"""Reader training examples: a labelled window -> one un-padded row with its labels, and the training-time candidate
augmentation.

Inputs are built by `reader.inputs.span_rows` / `triplet_row` (so training rows are the rows inference sees, token
for token); labels follow the reference's training datasets (relik-reference.md §2.5;
`relik_reader_data.RelikDataset._build_labels`, `relik_reader_re_data.RelikREDataset._build_labels`):

- EL (char labels, sorted by (start, end)): start label at the sub-token whose char start is the mention's (the
  last such sub-token when several share it; otherwise the nearest one to the left), end label at the sub-token
  whose char end is the mention's (else the nearest to the right); +1 for CLS. The ed label is the gold title's
  index in the row's predictable candidates + 1 (column 0 = CLS, so with `use_nme` NME = 1); a gold title missing
  from the row's candidates becomes NME (or the mention is dropped without `use_nme`). A second label on the same
  (start, end) is ignored. Gold titles have '_' replaced by ' ' as the reference's `preprocess_sample`.
- RE / cIE (word labels, window-relative `[ws, we)`): start = first sub-token of word ws, end = last sub-token of
  word we - 1 (+1 for CLS; words without sub-tokens are skipped inwards); end labels are -100 before their start;
  relation labels [M, M, R] over the distinct mentions sorted by (start, end) = the order of
  `reader.select_mentions`; cIE type labels [M, T] = 1 at the gold type's column in the row's entity candidates.

Training-time candidate augmentation as the reference datasets (seeded numpy RNG, per epoch):
EL `random_drop_gold_candidates` (relabel some gold titles NME and drop them from the candidates) and
`shuffle_candidates`; RE gold relations forced into the candidates (replacing the last non-gold ones),
`shuffle_candidates` or else `flip_candidates` (random adjacent swaps), NME kept first.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence

import numpy as np
from tokenizers import Tokenizer

from relik_jax.labels import NME
from relik_jax.reader.inputs import SpanInputConfig, TokenizerInfo, TripletInputConfig, span_rows, triplet_row
from relik_jax.reader.tokens import SubwordCache
from relik_jax.text.windows import Label, Window


@dataclasses.dataclass
class Example:
    """One training row with labels, un-padded. Positions are row positions (CLS = 0)."""

    input_ids: np.ndarray  # [n] int32
    token_type_ids: np.ndarray  # [n] int32
    prediction_mask: np.ndarray  # [n] bool
    symbol_mask: np.ndarray  # [n] bool: EL candidate columns (CLS first), RE relation symbols
    type_mask: np.ndarray  # [n] bool: cIE entity-type symbols (else all False)
    n_text: int
    mentions: list[tuple[int, int]]  # gold (start, end) sorted
    ed_labels: list[int]  # EL: candidate index + 1 per mention
    relation_labels: np.ndarray | None = None  # RE [M, M, R] int8
    type_labels: np.ndarray | None = None  # cIE [M, T] float32
    mask_preceding: bool = False  # RE: end labels before their start are -100

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def starts(self) -> list[int]:
        return sorted({s for s, _ in self.mentions})


def _char_maps(char_starts: Sequence[int], char_ends: Sequence[int]) -> tuple[dict[int, int], dict[int, int]]:
    # dict inversion: the last sub-token with a given char start / end wins, as the reference's
    return {c: i for i, c in enumerate(char_starts)}, {c: i for i, c in enumerate(char_ends)}


def _snap(char: int, table: dict[int, int], step: int, lo: int, hi: int) -> int | None:
    while char not in table:
        char += step
        if char < lo or char > hi:
            return None
    return table[char]


def span_examples(window: Window, tokenizer: Tokenizer | SubwordCache, info: TokenizerInfo, cfg: SpanInputConfig,
                  labels: Sequence[Label] | None = None) -> list[Example]:
    """EL examples of a window (one per candidate patch, as `span_rows`); `labels` replace the window's (char)
    labels (augmentation)."""
    if labels is None:
        labels = window.labels or []
    labels = sorted(((s, e, t.replace("_", " ")) for s, e, t in labels), key=lambda x: (x[0], x[1]))
    out = []
    for row in span_rows(window, 0, tokenizer, info, cfg):
        text = row.text
        if not len(text):
            continue
        starts_map, ends_map = _char_maps(text.char_starts, text.char_ends)
        lo, hi = min(text.char_starts), max(text.char_ends)
        pred = row.predictable_candidates
        mentions: dict[tuple[int, int], int] = {}
        for cs, ce, gold in labels:
            if gold not in pred:
                if not cfg.use_nme:
                    continue
                gold = NME
            s = _snap(cs, starts_map, -1, lo, hi)
            e = _snap(ce, ends_map, +1, lo, hi)
            if s is None or e is None:
                continue
            key = (s + 1, e + 1)
            if key not in mentions:  # a second label on the same span is ignored (reference)
                mentions[key] = pred.index(gold) + 1
        ms = sorted(mentions)
        out.append(Example(row.input_ids, row.token_type_ids, row.prediction_mask, row.special_symbols_mask,
                           np.zeros(len(row), bool), len(text), ms, [mentions[m] for m in ms]))
    return out


def _word_tokens(window: Window, char_starts: Sequence[int]) -> dict[int, list[int]]:
    """Window-relative word index -> its sub-token indices (text positions, no CLS)."""
    out: dict[int, list[int]] = {i: [] for i in range(len(window.words))}
    word_starts = window.word_starts.tolist()
    for t, c in enumerate(char_starts):
        w = bisect.bisect_right(word_starts, c) - 1
        if w >= 0:
            out[w].append(t)
    return out


def triplet_example(window: Window, tokenizer: Tokenizer | SubwordCache, info: TokenizerInfo,
                    cfg: TripletInputConfig) -> Example | None:
    """RE / cIE example of a window (None when the row is skipped, as the reference): its word labels."""
    row = triplet_row(window, 0, tokenizer, info, cfg)
    if row is None or not window.word_labels:
        return None
    w2t = _word_tokens(window, row.text.char_starts)
    n_words = len(window.words)
    spans: dict[tuple[int, int], str] = {}
    word_span: dict[tuple[int, int], tuple[int, int]] = {}
    for ws, we, label in sorted(window.word_labels, key=lambda x: (x[0], x[1])):
        while ws < n_words and not w2t.get(ws):  # the reference's `_adjust_entity_boundaries`
            ws += 1
        while we > 0 and not w2t.get(we - 1):
            we -= 1
        if ws >= n_words or we <= ws:
            continue
        key = (w2t[ws][0] + 1, w2t[we - 1][-1] + 1)
        if key not in spans:
            spans[key] = label
            word_span[(ws, we)] = key
    ms = sorted(spans)
    index = {m: i for i, m in enumerate(ms)}
    n_rel = len(row.triplet_candidates)
    rel = np.zeros((len(ms), len(ms), n_rel), np.int8)
    for (ss, se, _), r, (os_, oe, _) in window.word_triplet_labels or []:
        sk, ok = word_span.get((ss, se)), word_span.get((os_, oe))
        if sk is not None and ok is not None and r in row.triplet_candidates:
            rel[index[sk], index[ok], row.triplet_candidates.index(r)] = 1
    types = None
    if cfg.type_symbols:
        cands = row.span_candidates or []
        types = np.zeros((len(ms), int(row.entity_symbols_mask.sum())), np.float32)
        for m, label in spans.items():
            if label in cands and cands.index(label) < types.shape[1]:
                types[index[m], cands.index(label)] = 1.0
    return Example(row.input_ids, row.token_type_ids, row.prediction_mask, row.relation_symbols_mask,
                   row.entity_symbols_mask, len(row.text), ms, [], rel, types, mask_preceding=True)


def augment_span(window: Window, rng: np.random.Generator, shuffle: float, drop_gold: float
                 ) -> tuple[list[str], list[Label]]:
    """The reference's EL training mods: (candidates, labels) after random gold dropping and shuffling."""
    cands = list(window.span_candidates or [])
    labels = [(s, e, t.replace("_", " ")) for s, e, t in window.labels or []]
    if drop_gold > 0 and rng.uniform() < drop_gold and len({t for _, _, t in labels}) > 1:
        order = rng.permutation(len(labels))
        labels = [labels[i] for i in order]
        dropped = {labels[i][2] for i in range(int(rng.integers(0, len(labels) - 1)))} - {NME}
        labels = [(s, e, NME if t in dropped else t) for s, e, t in labels]
        cands = [c for c in cands if c not in dropped]
    if shuffle > 0 and rng.uniform() < shuffle:
        cands = [cands[i] for i in rng.permutation(len(cands))]
    return cands, labels


def augment_triplet(window: Window, rng: np.random.Generator, max_relations: int, shuffle: float,
                    flip: float, add_gold: bool = True, span_nme: bool = False) -> tuple[list[str], list[str] | None]:
    """The reference's RE training mods: (triplet candidates, span candidates). `span_nme`: the rows will put NME
    first among the span (type) candidates; the reference inserts it BEFORE these mods, so NME takes part in the
    flip's adjacent swaps (which shifts the others: the first type stays first with p = 3/4, not 1/2) and is then
    moved back to the front. Returned span candidates exclude NME (the row adds it)."""
    trip = list(window.triplet_candidates or [])[:max_relations]
    spans = list(window.span_candidates) if window.span_candidates is not None else None
    gold = {r for _, r, _ in window.word_triplet_labels or []}
    if add_gold and gold:
        missing = sorted(gold - set(trip))
        k = 0
        for i in reversed(range(len(trip))):
            if k == len(missing):
                break
            if trip[i] not in gold and trip[i] != NME:
                trip[i] = missing[k]
                k += 1
        while k < len(missing) and len(trip) < max_relations:
            trip.append(missing[k])
            k += 1

    def nme_first(c: list[str]) -> list[str]:
        return ([NME] + [x for x in c if x != NME]) if NME in c else c

    def shuffled(c: list[str]) -> list[str]:
        return nme_first([c[i] for i in rng.permutation(len(c))]) if rng.uniform() < shuffle else c

    def flipped(c: list[str]) -> list[str]:
        if rng.uniform() >= flip:
            return c
        c = list(c)
        for i in range(len(c) - 1):
            if rng.uniform() < 0.5:
                c[i], c[i + 1] = c[i + 1], c[i]
        return nme_first(c)

    span_nme = span_nme and spans is not None and NME not in spans
    if span_nme:
        spans = [NME, *spans]
    if shuffle > 0:
        trip = shuffled(trip)
        spans = shuffled(spans) if spans is not None else None
    elif flip > 0:
        trip = flipped(trip)
        spans = flipped(spans) if spans is not None else None
    if span_nme:
        spans = spans[1:]  # NME is first again (nme_first); the row inserts it
    return trip, spans
