"""Readers for the shared datasets, and converters to the reference's data formats.

Readers are generators of plain dataclasses with character offsets (Python `str` indices) into `text`:
- `read_aida(split)` -> `Document` (EL; mentions labelled with 2010 Wikipedia titles, `NME` for `--NME--`);
- `read_conll04(split)`, `read_nyt(split)`, `read_rebel_sample()` -> `Document` with entities and `triplets`;
- `read_wikidata_properties()`, `nyt_relation_names()`, `read_rebel_relation_counts()` -> relation
definitions.

Converters follow the reference's formats (relik-reference.md §4): `to_raw_el` / `to_raw_re` (§4.2, the
inputs of
`relik data create-windows`), `labelled_windows` (§4.3 windowized reader data with `window_labels`,
`window_labels_tokens`, `window_triplet_labels`, `window_triplet_labels_tokens`) and `to_dpr` (§4.1 retriever
training), plus `read_jsonl` / `write_jsonl` for windowized files.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relik_jax.paths import data_path

NME = "--NME--"  # label of mentions whose entity is not in the KB (AIDA's marker; the reference's NME symbol)
NYT_ENTITY_TYPE = "ENTITY"  # the NYT files carry no entity types

__all__ = [
    "NME",
    "NYT_ENTITY_TYPE",
    "Mention",
    "TripletLabel",
    "Document",
    "Relation",
    "LocateStats",
    "read_aida",
    "read_conll04",
    "read_nyt",
    "read_rebel_sample",
    "read_wikidata_properties",
    "nyt_relation_names",
    "read_rebel_relation_counts",
    "read_jsonl",
    "write_jsonl",
    "to_raw_el",
    "to_raw_re",
    "labelled_windows",
    "to_dpr",
]


@dataclass(frozen=True, slots=True)
class Mention:
    """A labelled span: chars `[start, end)` of the document text; label = entity title / type / NME."""

    start: int
    end: int
    label: str
    text: str


@dataclass(frozen=True, slots=True)
class TripletLabel:
    subject: Mention
    relation: str
    object: Mention


@dataclass(slots=True)
class Document:
    """One annotated document. `words` are the dataset's own tokens when it has them (`word_offsets` gives
    their
    char spans), else empty; windowing re-tokenizes `text` with relik_jax.words unless told to use `words`."""

    doc_id: str
    text: str
    mentions: list[Mention] = field(default_factory=list)
    triplets: list[TripletLabel] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    word_offsets: list[tuple[int, int]] = field(default_factory=list)
    split: str = ""
    topic: str = ""


@dataclass(frozen=True, slots=True)
class Relation:
    """A relation type usable as a retriever passage: `label` (+ `description`)."""

    id: str
    label: str
    description: str = ""
    datatype: str = ""


def _join_words(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    offsets, pos = [], 0
    for w in words:
        offsets.append((pos, pos + len(w)))
        pos += len(w) + 1
    return " ".join(words), offsets


# ------------------------------------------------------------------------------------------------------- AIDA
_AIDA_SPLITS = ("train", "testa", "testb")
_DOCSTART = re.compile(r"^-DOCSTART- \((.*)\)$")


def read_aida(split: str = "testb", path: str | Path | None = None) -> Iterator[Document]:
    """AIDA-CoNLL documents of one split (`train`, `testa`, `testb`) from the official AIDA-YAGO2 TSV.

    Text = the CoNLL tokens joined by single spaces (as ZELDA's test_aida-b.jsonl); mention label =
    Wikipedia title
    from the URL column with spaces (2010 titles), or `NME` for `--NME--` mentions."""
    if split not in _AIDA_SPLITS:
        raise ValueError(f"AIDA split must be one of {_AIDA_SPLITS}, got {split!r}")
    path = Path(path) if path else data_path("aida-conll", "AIDA-YAGO2-dataset.tsv")
    doc_id: str | None = None
    words: list[str] = []
    spans: list[list[Any]] = []  # [word_start, word_end, label]

    def flush() -> Document | None:
        if doc_id is None:
            return None
        number, _, topic = doc_id.partition(" ")
        doc_split = "testa" if "testa" in number else "testb" if "testb" in number else "train"
        if doc_split != split:
            return None
        text, offsets = _join_words(words)
        mentions = [
            Mention(offsets[s][0], offsets[e - 1][1], label, text[offsets[s][0] : offsets[e - 1][1]])
            for s, e, label in spans
        ]
        return Document(doc_id, text, mentions, [], list(words), offsets, doc_split, topic)

    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            m = _DOCSTART.match(line)
            if m:
                doc = flush()
                if doc is not None:
                    yield doc
                doc_id, words, spans = m.group(1), [], []
                continue
            if not line:
                continue  # sentence break: sentences are joined with a single space like the words
            cols = line.split("\t")
            if len(cols) >= 4 and cols[1] in ("B", "I"):
                if cols[1] == "B" or not spans or spans[-1][1] != len(words):
                    if cols[3] == NME:
                        label = NME
                    else:
                        url = cols[4] if len(cols) >= 5 else cols[3]
                        label = url.rsplit("/wiki/", 1)[-1].replace("_", " ")
                    spans.append([len(words), len(words) + 1, label])
                else:
                    spans[-1][1] = len(words) + 1
            words.append(cols[0])
        doc = flush()
        if doc is not None:
            yield doc


# ---------------------------------------------------------------------------------------------------- CoNLL04
_CONLL04_FILES = {"train": "train", "dev": "valid", "valid": "valid", "test": "test"}


def read_conll04(split: str = "test", path: str | Path | None = None) -> Iterator[Document]:
    """CoNLL04 sentences (unified JSON of two-are-better-than-one); entity label = entity type."""
    if split not in _CONLL04_FILES:
        raise ValueError(f"CoNLL04 split must be one of {sorted(_CONLL04_FILES)}, got {split!r}")
    path = Path(path) if path else data_path("conll04", f"{_CONLL04_FILES[split]}.CoNLL04.json")
    for i, row in enumerate(_read_json_rows(path)):
        text, offsets = _join_words(row["tokens"])
        types = {(s, e): t for s, e, t in row["entities"]}
        mentions = [_word_mention(text, offsets, s, e, t) for s, e, t in row["entities"]]
        triplets = [
            TripletLabel(
                _word_mention(text, offsets, hs, he, types.get((hs, he), "")),
                rel,
                _word_mention(text, offsets, ts, te, types.get((ts, te), "")),
            )
            for hs, he, ts, te, rel in row["relations"]
        ]
        yield Document(f"{split}-{i}", text, mentions, triplets, list(row["tokens"]), offsets, split)


def _word_mention(text: str, offsets: list[tuple[int, int]], s: int, e: int, label: str) -> Mention:
    """Mention over words `[s, e)`."""
    return Mention(offsets[s][0], offsets[e - 1][1], label, text[offsets[s][0] : offsets[e - 1][1]])


def _read_json_rows(path: Path) -> list[dict]:
    """A JSON list, or JSON lines."""
    with open(path, encoding="utf-8") as f:
        head = f.read(1)
        f.seek(0)
        if head == "[":
            return json.load(f)
        return [json.loads(line) for line in f if line.strip()]


# -------------------------------------------------------------------------------------------------------- NYT
@dataclass(slots=True)
class LocateStats:
    """How many NYT triplets had both entities found as word-aligned exact matches in the sentence."""

    triplets: int = 0
    located: int = 0
    missing_entities: list[tuple[str, str]] = field(default_factory=list)  # (doc_id, entity text)


def _find_words(words: list[str], needle: list[str]) -> int:
    n = len(needle)
    for i in range(len(words) - n + 1):
        if words[i : i + n] == needle:
            return i
    return -1


def read_nyt(
    split: str = "test",
    path: str | Path | None = None,
    relation_names: dict[str, str] | None = None,
    stats: LocateStats | None = None,
) -> Iterator[Document]:
    """NYT (exact-name version) sentences with triplets; entities are located by word-aligned exact match.

    The text is whitespace-tokenized; an entity is the first occurrence of its words. Triplets whose
    subject or
    object cannot be located are dropped and counted in `stats` (pass a `LocateStats`). Relation label =
    REBEL's
    verbal name (`relation_names`, default `nyt_relation_names()`); pass `{}` to keep Freebase paths."""
    files = {"test": "test", "dev": "valid", "valid": "valid"}
    if split not in files:
        raise ValueError(
            f"NYT split must be one of {sorted(files)} (the train split is not available), got {split!r}"
        )
    path = Path(path) if path else data_path("nyt", "exact_data", f"{files[split]}.json")
    names = nyt_relation_names() if relation_names is None else relation_names
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            row = json.loads(line)
            text = row["sentText"]
            words = text.split(" ")
            offsets, pos = [], 0
            for w in words:
                offsets.append((pos, pos + len(w)))
                pos += len(w) + 1
            doc_id = f"{split}-{i}"
            found: dict[str, Mention | None] = {}
            triplets = []
            for rm in row["relationMentions"]:
                for name in (rm["em1Text"], rm["em2Text"]):
                    if name not in found:
                        found[name] = _locate(text, words, offsets, name)
                head, tail = found[rm["em1Text"]], found[rm["em2Text"]]
                if stats is not None:
                    stats.triplets += 1
                if head is None or tail is None:
                    if stats is not None:
                        stats.missing_entities += [
                            (doc_id, n)
                            for n, m in ((rm["em1Text"], head), (rm["em2Text"], tail))
                            if m is None
                        ]
                    continue
                if stats is not None:
                    stats.located += 1
                triplets.append(TripletLabel(head, names.get(rm["label"], rm["label"]), tail))
            mentions = sorted({m for m in found.values() if m is not None}, key=lambda m: (m.start, m.end))
            yield Document(doc_id, text, mentions, triplets, words, offsets, split)


def _strip_accents(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def _locate(text: str, words: list[str], offsets: list[tuple[int, int]], name: str) -> Mention | None:
    """First word-aligned occurrence of `name` in the sentence; falls back to an accent-insensitive match
    (the exact-name NYT files write e.g. "Cancún" for a sentence's "Cancun")."""
    needle = [w for w in name.split(" ") if w]
    if not needle:
        return None
    k = _find_words(words, needle)
    if k < 0:
        k = _find_words([_strip_accents(w) for w in words], [_strip_accents(w) for w in needle])
    if k < 0:
        return None
    s, e = offsets[k][0], offsets[k + len(needle) - 1][1]
    return Mention(s, e, NYT_ENTITY_TYPE, text[s:e])


def nyt_relation_names(path: str | Path | None = None) -> dict[str, str]:
    """NYT Freebase relation path -> REBEL's verbal relation name (e.g. `/people/person/children` ->
    `child`)."""
    path = Path(path) if path else data_path("nyt", "nyt_relations.json")
    with open(path, encoding="utf-8") as f:
        return {r["label"]: r["rebel_name"] for r in json.load(f)["relations"]}


# ------------------------------------------------------------------------------------------------------ REBEL
def read_rebel_sample(path: str | Path | None = None) -> Iterator[Document]:
    """REBEL sample abstracts: entity mentions labelled with their Wikidata QID, triplets with the property
    label."""
    path = Path(path) if path else data_path("rebel-sample", "sample.jsonl")
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            text = row["text"]
            mentions = sorted(
                {_rebel_mention(text, e) for e in row["entities"] if e.get("boundaries")},
                key=lambda m: (m.start, m.end),
            )
            triplets = [
                TripletLabel(
                    _rebel_mention(text, t["subject"]),
                    t["predicate"]["surfaceform"],
                    _rebel_mention(text, t["object"]),
                )
                for t in row["triples"]
            ]
            yield Document(str(row["docid"]), text, mentions, triplets, topic=row["title"])


def _rebel_mention(text: str, ent: dict) -> Mention:
    s, e = ent["boundaries"]
    return Mention(s, e, ent["uri"], text[s:e])


def read_rebel_relation_counts(path: str | Path | None = None) -> dict[str, int]:
    """REBEL's 230 relation labels -> frequency in the full REBEL corpus."""
    path = Path(path) if path else data_path("rebel-sample", "relations_count.tsv")
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                label, count = line.rstrip("\n").rsplit("\t", 1)
                out[label] = int(count)
    return out


def read_wikidata_properties(
    path: str | Path | None = None, item_valued_only: bool = False
) -> list[Relation]:
    """Wikidata properties (label + description), the relation "passages" of REBEL-style RE."""
    path = Path(path) if path else data_path("wikidata-relations", "wikidata_properties.json")
    with open(path, encoding="utf-8") as f:
        rows = json.load(f)
    return [
        Relation(r["id"], r["label"], r.get("description") or "", r.get("datatype") or "")
        for r in rows
        if not item_valued_only or r.get("datatype") == "WI"
    ]


# ------------------------------------------------------------------------------------------------ JSONL + raw
def read_jsonl(path: str | Path) -> Iterator[dict]:
    """One JSON object per line (e.g. the reference's windowized reader data)."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not a JSON object per line ({e})") from e


def write_jsonl(rows: Iterable[dict], path: str | Path) -> int:
    """Write dicts one per line (UTF-8, no ASCII escaping); returns the number of lines."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def to_raw_el(doc: Document) -> dict:
    """§4.2 raw EL format: `{"doc_id", "doc_text", "doc_span_annotations": [[char_start, char_end,
    title]]}`."""
    return {
        "doc_id": doc.doc_id,
        "doc_text": doc.text,
        "doc_span_annotations": [[m.start, m.end, m.label] for m in doc.mentions],
    }


def _word_span(m: Mention, offsets: list[tuple[int, int]]) -> tuple[int, int]:
    """Word span `[ws, we)` covering the char span (words overlapping it)."""
    ws = next((i for i, (_, e) in enumerate(offsets) if e > m.start), len(offsets))
    we = next((i for i in range(len(offsets) - 1, -1, -1) if offsets[i][0] < m.end), -1) + 1
    return ws, max(we, ws + 1)


def to_raw_re(doc: Document) -> dict:
    """§4.2 raw RE format: word-level spans over `doc_words` (the dataset's own words, else spaCy-like
    words)."""
    if doc.words:
        words, offsets = doc.words, doc.word_offsets
    else:
        from relik_jax.words import tokenize

        ws = tokenize(doc.text)
        words, offsets = [w.text for w in ws], [(w.start, w.end) for w in ws]

    def span(m: Mention) -> list:
        return [*_word_span(m, offsets), m.label]

    return {
        "doc_id": doc.doc_id,
        "doc_words": list(words),
        "doc_span_annotations": [span(m) for m in doc.mentions],
        "doc_triplet_annotations": [
            {"subject": span(t.subject), "relation": t.relation, "object": span(t.object)}
            for t in doc.triplets
        ],
    }


# ------------------------------------------------------------------------------------------- labelled windows
def labelled_windows(
    docs: Iterable[Document],
    window_size: int | None = 32,
    window_stride: int | None = 16,
    use_dataset_words: bool = False,
    title_map: dict[str, str] | None = None,
) -> Iterator[dict]:
    """Windowized reader-training rows (§4.3) with gold labels, as `relik data create-windows` writes them.

    A gold mention belongs to a window when its (whitespace-trimmed) char span lies inside the window's text;
    a triplet when both its subject and object do. `window_labels` use absolute chars, `window_labels_tokens`
    window-relative words (end exclusive). `window_size=None` -> one window per document. Words come from
    relik_jax.words (as the reference's spaCy), or from the dataset's tokens with `use_dataset_words=True`
    (the reference's `--is-split-into-words`)."""
    from relik_jax.windows import WindowSplitter

    splitter = WindowSplitter(window_size, window_stride)
    title_map = title_map or {}
    for doc in docs:
        words = doc.words if use_dataset_words else None
        for window in splitter.split_document(doc.text, doc_id=doc.doc_id, words=words, doc_topic=doc.topic):
            row = window.to_dict()
            lo, hi = window.char_start, window.char_end
            labels = [_trim(doc.text, m, title_map) for m in doc.mentions if lo <= m.start and m.end <= hi]
            row["window_labels"] = [[m.start, m.end, m.label] for m in labels]
            row["window_labels_tokens"] = [_window_tokens(window, m) for m in labels]
            if doc.triplets:
                trips = [
                    (_trim(doc.text, t.subject, title_map), t.relation, _trim(doc.text, t.object, title_map))
                    for t in doc.triplets
                    if lo <= min(t.subject.start, t.object.start) and max(t.subject.end, t.object.end) <= hi
                ]
                row["window_triplet_labels"] = [
                    {"subject": [s.start, s.end, s.label], "relation": r, "object": [o.start, o.end, o.label]}
                    for s, r, o in trips
                ]
                row["window_triplet_labels_tokens"] = [
                    {"subject": _window_tokens(window, s), "relation": r, "object": _window_tokens(window, o)}
                    for s, r, o in trips
                ]
            yield row


def _trim(text: str, m: Mention, title_map: dict[str, str]) -> Mention:
    """Mention without surrounding whitespace, label mapped through `title_map`."""
    t = text[m.start : m.end]
    s = m.start + (len(t) - len(t.lstrip()))
    e = max(s, m.end - (len(t) - len(t.rstrip())))
    return Mention(s, e, title_map.get(m.label, m.label), text[s:e])


def _window_tokens(window: Any, m: Mention) -> list:
    ws, we = window.char_span_to_words(m.start, m.end)
    return [ws, we, m.label]


def to_dpr(
    windows: Iterable[dict],
    label_type: str = "span",
    title_to_id: dict[str, int] | None = None,
    definitions: dict[str, str] | None = None,
) -> Iterator[dict]:
    """§4.1 DPR-like retriever training rows from labelled windows (NME labels and windows without
    positives are
    skipped; `label_type="triplet"` uses the relations of `window_triplet_labels`)."""
    if label_type not in ("span", "triplet"):
        raise ValueError(f"label_type must be 'span' or 'triplet', got {label_type!r}")
    title_to_id = title_to_id or {}
    definitions = definitions or {}
    for w in windows:
        if label_type == "span":
            labels = [label for _, _, label in w.get("window_labels", [])]
        else:
            labels = [t["relation"] for t in w.get("window_triplet_labels", [])]
        seen: list[str] = []
        for label in labels:
            if label != NME and label not in seen:
                seen.append(label)
        if not seen:
            continue
        prefix = f"{w['doc_id']}_{w['offset']}"
        yield {
            "id": prefix,
            "doc_topic": w.get("doc_topic", ""),
            "question": w["text"],
            "positive_ctxs": [
                {
                    "text": label,
                    "id": title_to_id.get(label),
                    "metadata": {"definition": definitions.get(label, ""), "passage_id": f"{prefix}_{i}"},
                }
                for i, label in enumerate(seen)
            ],
            "negative_ctxs": "",
            "hard_negative_ctxs": "",
        }
