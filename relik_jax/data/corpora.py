"""Readers for the shared datasets, and converters to the reference's data formats.

Readers are generators of plain dataclasses with char offsets (Python `str` indices) into `text`:
- `read_aida(split)` -> `Document` (EL; mentions labelled with 2010 Wikipedia titles, `NME` = `--NME--`);
- `read_conll04(split)`, `read_nyt(split)`, `read_rebel_sample()` -> `Document` with entity mentions and
  `triplets`;
- `read_wikidata_properties()`, `nyt_relation_names()`, `read_rebel_relation_counts()` -> relation types.

Converters follow the reference's formats (relik-reference.md §4): `to_raw_el` / `to_raw_re` (§4.2, the
inputs of `relik data create-windows`), `labelled_windows` (§4.3 windowized reader data with
`window_labels`, `window_labels_tokens`, `window_triplet_labels`, `window_triplet_labels_tokens`), `to_dpr`
(§4.1 retriever training), and `read_jsonl` / `write_jsonl` for windowized files.
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
    "RebelStats",
    "read_aida",
    "read_conll04",
    "read_nyt",
    "read_rebel_sample",
    "read_wikidata_properties",
    "nyt_relation_names",
    "read_rebel_relation_counts",
    "relation_definitions",
    "read_jsonl",
    "read_windows",
    "write_jsonl",
    "to_raw_el",
    "to_raw_re",
    "create_windows",
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
    """One annotated document.

    `words` are the dataset's own tokens when it has them (`word_offsets` are their char spans), else
    empty; windowing re-tokenizes `text` with relik_jax.text.words unless told to use `words`."""

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

    Text = the CoNLL tokens joined by single spaces (as ZELDA's test_aida-b.jsonl); mention label = the
    Wikipedia title of the URL column with spaces (2010 titles), or `NME` for `--NME--` mentions."""
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

    The text is whitespace-tokenized; an entity is the first occurrence of its words (accent-insensitive
    as a fallback). Triplets whose subject or object cannot be located are dropped and counted in `stats`
    (pass a `LocateStats`). Relation label = REBEL's verbal name (`relation_names`, default
    `nyt_relation_names()`); pass `{}` to keep the Freebase paths."""
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
    """NYT Freebase relation path -> REBEL's relation name (`/people/person/children` -> `child`)."""
    path = Path(path) if path else data_path("nyt", "nyt_relations.json")
    with open(path, encoding="utf-8") as f:
        return {r["label"]: r["rebel_name"] for r in json.load(f)["relations"]}


# ------------------------------------------------------------------------------------------------------ REBEL
@dataclass(slots=True)
class RebelStats:
    """REBEL boundary repairs: `realigned` mentions had boundaries that did not cover their surface form
    (mostly 2 chars too far right) and were moved to the nearest occurrence of it; `unlocated` kept theirs."""

    mentions: int = 0
    realigned: int = 0
    unlocated: int = 0


def read_rebel_sample(path: str | Path | None = None, stats: RebelStats | None = None) -> Iterator[Document]:
    """REBEL sample abstracts: mentions labelled with their Wikidata QID, triplets with the property label.

    About 16% of the sample's entity boundaries are shifted (they do not cover the entity's `surfaceform`);
    such mentions are moved to the occurrence of the surface form nearest to the given start (all are found
    in the sample). Pass a `RebelStats` to count the repairs."""
    path = Path(path) if path else data_path("rebel-sample", "sample.jsonl")
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            text = row["text"]
            fixed: dict[tuple, Mention] = {}

            def mention(ent: dict, text: str = text, fixed: dict = fixed) -> Mention:
                key = (ent["boundaries"][0], ent["boundaries"][1], ent["surfaceform"], ent["uri"])
                if key not in fixed:
                    fixed[key] = _rebel_mention(text, ent, stats)
                return fixed[key]

            # label in the key: one span can carry two QIDs, and set order varies with PYTHONHASHSEED
            mentions = sorted(
                {mention(e) for e in row["entities"] if e.get("boundaries")}, key=lambda m: (m.start, m.end, m.label)
            )
            triplets = [
                TripletLabel(mention(t["subject"]), t["predicate"]["surfaceform"], mention(t["object"]))
                for t in row["triples"]
            ]
            yield Document(str(row["docid"]), text, mentions, triplets, topic=row["title"])


def _rebel_mention(text: str, ent: dict, stats: RebelStats | None) -> Mention:
    s, e = ent["boundaries"]
    surface = ent.get("surfaceform") or text[s:e]
    if stats is not None:
        stats.mentions += 1
    if text[s:e] != surface:
        hits = [m.start() for m in re.finditer(re.escape(surface), text)]
        if hits:
            s = min(hits, key=lambda h: (abs(h - s), h))
            e = s + len(surface)
            if stats is not None:
                stats.realigned += 1
        elif stats is not None:
            stats.unlocated += 1
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


def relation_definitions(labels: Iterable[str], properties: list[Relation] | None = None) -> dict[str, str]:
    """Relation label -> Wikidata description (exact label match, item-valued properties preferred);
    labels without a match (renamed since the dataset was built, or dataset-specific names) map to ""."""
    props = read_wikidata_properties() if properties is None else properties
    by_label: dict[str, str] = {}
    for p in sorted(props, key=lambda p: p.datatype != "WI"):  # item-valued first
        by_label.setdefault(p.label, p.description)
    return {label: by_label.get(label, "") for label in labels}


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


def read_windows(path: str | Path) -> Iterator[Any]:
    """Windowized reader data (§4.3 JSONL, ours or the reference's) as `relik_jax.text.windows.Window`s; keys
    other than the window fields (labels, candidates) are kept in `Window.extra`."""
    from relik_jax.text.windows import Window

    for row in read_jsonl(path):
        yield Window.from_dict(row)


def write_jsonl(rows: Iterable[dict], path: str | Path) -> int:
    """Write dicts one per line (UTF-8, no ASCII escaping); returns the number of lines."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def to_raw_el(doc: Document, doc_id: int | str | None = None, include_triplets: bool = False) -> dict:
    """§4.2 raw EL format: `{"doc_id", "doc_text", "doc_span_annotations": [[start, end, title]]}` (chars).

    `relik data create-windows` wants integer doc ids: pass `doc_id`. `include_triplets` adds
    `doc_triplet_annotations` with char spans (the char-level RE input the same command accepts)."""
    row: dict[str, Any] = {
        "doc_id": doc.doc_id if doc_id is None else doc_id,
        "doc_text": doc.text,
        "doc_span_annotations": [[m.start, m.end, m.label] for m in doc.mentions],
    }
    if include_triplets:
        row["doc_triplet_annotations"] = [
            {"subject": [t.subject.start, t.subject.end, t.subject.label], "relation": t.relation,
             "object": [t.object.start, t.object.end, t.object.label]}
            for t in doc.triplets
        ]  # fmt: skip
    return row


def _word_span(m: Mention, offsets: list[tuple[int, int]]) -> tuple[int, int]:
    """Word span `[ws, we)` covering the char span (words overlapping it)."""
    ws = next((i for i, (_, e) in enumerate(offsets) if e > m.start), len(offsets))
    we = next((i for i in range(len(offsets) - 1, -1, -1) if offsets[i][0] < m.end), -1) + 1
    return ws, max(we, ws + 1)


def to_raw_re(doc: Document, doc_id: int | str | None = None) -> dict:
    """§4.2 raw RE format: word-level spans over `doc_words` (the dataset's words, else relik_jax.text.words)."""
    if doc.words:
        words, offsets = doc.words, doc.word_offsets
    else:
        from relik_jax.text.words import tokenize

        ws = tokenize(doc.text)
        words, offsets = [w.text for w in ws], [(w.start, w.end) for w in ws]

    def span(m: Mention) -> list:
        return [*_word_span(m, offsets), m.label]

    return {
        "doc_id": doc.doc_id if doc_id is None else doc_id,
        "doc_words": list(words),
        "doc_span_annotations": [span(m) for m in doc.mentions],
        "doc_triplet_annotations": [
            {"subject": span(t.subject), "relation": t.relation, "object": span(t.object)}
            for t in doc.triplets
        ],
    }


# ------------------------------------------------------------------------------------------- labelled windows
def create_windows(
    rows: Iterable[dict],
    window_size: int | str | None = 32,
    window_stride: int | None = 16,
    is_split_into_words: bool = False,
    labels_are_tokens: bool = False,
    title_mapping: dict[str, str] | None = None,
    relation_mapping: dict[str, str] | None = None,
    write_batch_size: int = 10_000,
) -> Iterator[dict]:
    """`relik data create-windows` on raw §4.2 rows: windowized reader-training rows (§4.3) with gold labels.

    Reproduces the reference command, including its quirks:
    - documents are processed in batches of `write_batch_size`, and every window of a batch gets the first
      word of the batch's first document as `doc_topic`; a falsy doc id becomes the position in the batch;
    - char labels (`labels_are_tokens=False`) are trimmed of spaces, kept when inside the window text, and
      mapped to window-relative words: exact boundaries, else snapped to the words containing them, else
      left out of `window_labels_tokens` only; triplet arguments fall back to the matching window label;
    - word labels (`labels_are_tokens=True`, with `is_split_into_words=True` and `doc_words`) are
      document-level word spans kept when `start >= first word` and `end <= last word` (so a label ending
      at a window's last word is dropped); the reference then reads chars from window-level maps with
      document-level indices, which is only right for one window per document, so more windows raise a
      ValueError here.
    `window_size=None` or "none" -> one window per document (the README's RE setting)."""
    from relik_jax.text.windows import WindowSplitter

    if labels_are_tokens and not is_split_into_words:
        raise ValueError(
            "labels_are_tokens=True needs is_split_into_words=True (word-level `doc_words` input)"
        )
    splitter = WindowSplitter(window_size, window_stride)
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == write_batch_size:
            yield from _create_windows_batch(batch, splitter, is_split_into_words, labels_are_tokens,
                                             title_mapping, relation_mapping)  # fmt: skip
            batch = []
    if batch:
        yield from _create_windows_batch(batch, splitter, is_split_into_words, labels_are_tokens,
                                         title_mapping, relation_mapping)  # fmt: skip


def _create_windows_batch(
    batch: list[dict],
    splitter: Any,
    is_split_into_words: bool,
    labels_are_tokens: bool,
    title_mapping: dict[str, str] | None,
    relation_mapping: dict[str, str] | None,
) -> Iterator[dict]:
    field_name = "doc_words" if is_split_into_words else "doc_text"
    topic: str | None = None
    for position, doc in enumerate(batch):
        if field_name not in doc:
            raise ValueError(f"raw document {doc.get('doc_id')!r} has no {field_name!r} field")
        source = doc[field_name]
        doc_id = doc["doc_id"] if doc["doc_id"] else position
        windows = list(
            splitter.split_document(source, doc_id=doc_id, is_split_into_words=is_split_into_words)
        )
        if topic is None:  # [quirk] set once per batch
            topic = windows[0].doc_topic if windows else ""
        labels = [
            [s, e, _map(label, title_mapping, relation_mapping)]
            for s, e, label in doc["doc_span_annotations"]
        ]
        triplets = doc.get("doc_triplet_annotations")
        if triplets is not None and title_mapping:
            triplets = [
                {"subject": [*t["subject"][:2], title_mapping.get(t["subject"][2], t["subject"][2])],
                 "relation": title_mapping.get(t["relation"], t["relation"]),
                 "object": [*t["object"][:2], title_mapping.get(t["object"][2], t["object"][2])]}
                for t in triplets
            ]  # fmt: skip
        if labels_are_tokens and len(windows) > 1 and (labels or triplets):
            raise ValueError(
                f"document {doc_id!r}: word-level labels with {len(windows)} windows; the reference maps "
                "them to chars with document-level indices in window-level maps (wrong past the first "
                "window). Use window_size=None or char-level labels."
            )
        text = " ".join(source) if is_split_into_words else source
        for window in windows:
            window.doc_topic = topic
            row = window.to_dict()
            if labels_are_tokens:
                row.update(_token_labels(window, labels, triplets))
            else:
                row.update(_char_labels(window, text, labels, triplets))
            yield row


def _map(label: str, title_mapping: dict[str, str] | None, relation_mapping: dict[str, str] | None) -> str:
    if title_mapping is not None:
        label = title_mapping.get(label, label)
    if relation_mapping is not None:
        label = relation_mapping.get(label, label)
    return label


def _strip_spaces(text: str, start: int, end: int) -> tuple[int, int]:
    while 0 <= end - 1 < len(text) and text[end - 1] == " ":
        end -= 1
    while 0 <= start < len(text) and text[start] == " ":
        start += 1
    return start, end


def _char_labels(window: Any, text: str, labels: list, triplets: list | None) -> dict:
    lo, hi = window.offset, window.offset + len(window.text)
    starts, ends = window.word_starts.tolist(), window.word_ends.tolist()
    window_labels = []
    for s, e, label in labels:
        s, e = _strip_spaces(text, s, e)
        if s >= lo and e <= hi and s <= e:
            window_labels.append([s, e, label])
    window_labels_tokens = []
    for s, e, label in window_labels:
        ws, we = _exact_words(starts, ends, s, e)
        if ws is None or we is None:
            ws, we = _snapped_words(starts, ends, s, e)
        if ws is not None and we is not None:
            window_labels_tokens.append([ws, we, label])
    out: dict[str, Any] = {"window_labels": window_labels, "window_labels_tokens": window_labels_tokens}
    if triplets is None:
        return out
    kept = []
    for t in triplets:
        ss, se = _strip_spaces(text, t["subject"][0], t["subject"][1])
        os_, oe = _strip_spaces(text, t["object"][0], t["object"][1])
        if ss >= lo and se <= hi and os_ >= lo and oe <= hi:
            kept.append({"subject": [ss, se, t["subject"][2]], "relation": t["relation"],
                         "object": [os_, oe, t["object"][2]]})  # fmt: skip
    kept_tokens = []
    for t in kept:
        subject = _triplet_arg_words(starts, ends, t["subject"], window_labels, window_labels_tokens)
        obj = _triplet_arg_words(starts, ends, t["object"], window_labels, window_labels_tokens)
        if subject is None or obj is None:
            continue
        kept_tokens.append({"subject": [*subject, t["subject"][2]], "relation": t["relation"],
                            "object": [*obj, t["object"][2]]})  # fmt: skip
    out["window_triplet_labels"] = kept
    out["window_triplet_labels_tokens"] = kept_tokens
    return out


def _exact_words(starts: list[int], ends: list[int], s: int, e: int) -> tuple[int | None, int | None]:
    ws = next((i for i, v in enumerate(starts) if v == s), None)
    we = next((i + 1 for i, v in enumerate(ends) if v == e), None)
    return ws, we


def _snapped_words(starts: list[int], ends: list[int], s: int, e: int) -> tuple[int | None, int | None]:
    """The reference's fallback: scan words in order, taking every word whose [start, end] (inclusive)
    holds the char, until both ends are found (a later adjacent word can overwrite the start)."""
    ws = we = None
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        if a <= s <= b:
            ws = i
        if a <= e <= b:
            we = i + 1
        if ws is not None and we is not None:
            break
    return ws, we


def _triplet_arg_words(
    starts: list[int], ends: list[int], arg: list, window_labels: list, window_labels_tokens: list
) -> tuple[int, int] | None:
    ws, we = _exact_words(starts, ends, arg[0], arg[1])
    if ws is not None and we is not None:
        return ws, we
    # fall back to the window label with the same chars, read at the same position in the token labels
    idx = next((i for i, lab in enumerate(window_labels) if lab[0] == arg[0] and lab[1] == arg[1]), None)
    if idx is None or idx >= len(window_labels_tokens):
        return None
    return window_labels_tokens[idx][0], window_labels_tokens[idx][1]


def _token_labels(window: Any, labels: list, triplets: list | None) -> dict:
    first = window.first_word
    last = window.first_word + len(window.words) - 1
    starts, ends = window.word_starts.tolist(), window.word_ends.tolist()
    tokens = [lab for lab in labels if lab[0] >= first and lab[1] <= last]  # [quirk] end vs last word
    out: dict[str, Any] = {
        "window_labels_tokens": tokens,
        "window_labels": [[starts[s], ends[e - 1], label] for s, e, label in tokens],
    }
    if triplets is None:
        return out
    # [quirk] the reference tests the object's end twice instead of its start
    kept = [
        t for t in triplets
        if t["subject"][0] >= first and t["subject"][1] <= last and first <= t["object"][1] <= last
    ]  # fmt: skip
    out["window_triplet_labels_tokens"] = kept
    out["window_triplet_labels"] = [
        {"subject": [starts[t["subject"][0]], ends[t["subject"][1] - 1], t["subject"][2]],
         "relation": t["relation"],
         "object": [starts[t["object"][0]], ends[t["object"][1] - 1], t["object"][2]]}
        for t in kept
    ]  # fmt: skip
    return out


def labelled_windows(
    docs: Iterable[Document],
    window_size: int | str | None = 32,
    window_stride: int | None = 16,
    use_dataset_words: bool = False,
    title_map: dict[str, str] | None = None,
    batch_doc_topic: bool = False,
) -> Iterator[dict]:
    """Windowized reader-training rows (§4.3) of annotated `Document`s, with char labels (`window_labels`,
    `window_labels_tokens`, and for RE `window_triplet_labels`, `window_triplet_labels_tokens`), made by
    `create_windows` (the reference's `relik data create-windows`).

    Words come from relik_jax.text.words (the reference's spaCy) or, with `use_dataset_words=True`, from the
    dataset's tokens split on single spaces (the reference's `--is-split-into-words`; labels stay char-level,
    which the reference cannot do). `doc_topic` is each document's first word unless `batch_doc_topic`
    (the reference command's value: the first document's first word for up to 10,000 documents)."""
    from relik_jax.text.windows import WindowSplitter

    splitter = WindowSplitter(window_size, window_stride)
    topic: str | None = None
    for doc in docs:
        if use_dataset_words and (not doc.words or doc.text != " ".join(doc.words)):
            raise ValueError(
                f"document {doc.doc_id!r}: use_dataset_words=True needs words joined by single spaces = text"
            )
        row = to_raw_el(doc, include_triplets=bool(doc.triplets))
        if use_dataset_words:
            row["doc_words"] = list(doc.words)
        for window in _create_windows_batch([row], splitter, use_dataset_words, False, title_map, None):
            if batch_doc_topic:
                topic = window["doc_topic"] if topic is None else topic
                window["doc_topic"] = topic
            yield window


def to_dpr(
    windows: Iterable[dict],
    documents: Iterable[dict],
    label_type: str = "span",
    title_map: dict[str, str] | None = None,
    missing: set[str] | None = None,
) -> Iterator[dict]:
    """§4.1 DPR-like retriever training rows: the reference's `relik data convert-to-dpr`.

    `documents` is the passage store: dicts `{"text", "id", "metadata"}` (e.g. `read_jsonl` of a
    documents.jsonl; for repeated texts the last one wins). For every labelled window, each label
    (`window_labels` titles, or `window_triplet_labels` relations with `label_type="triplet"`), stripped,
    NME skipped, mapped through `title_map` (spans only), that names a passage becomes a positive with
    `metadata.passage_id = "<doc_id>_<offset>_<label index>"`; labels naming no passage go to `missing`;
    windows without positives are skipped. [Quirk kept] a passage that a window names twice appears twice,
    both times with the passage id of its last occurrence (the reference mutates one shared object)."""
    if label_type not in ("span", "triplet"):
        raise ValueError(f"label_type must be 'span' or 'triplet', got {label_type!r}")
    title_map = title_map or {}
    store: dict[str, dict] = {}
    for d in documents:
        store[d["text"]] = {"text": d["text"], "id": d.get("id"), "metadata": dict(d.get("metadata") or {})}
    for w in windows:
        if label_type == "triplet":
            labels = [(i, t["relation"]) for i, t in enumerate(w.get("window_triplet_labels", []))]
        else:
            labels = [(i, lab[2]) for i, lab in enumerate(w.get("window_labels", []))]
        positives: list[dict] = []
        for i, label in labels:
            if not label:
                continue
            label = label.strip()
            if label_type == "span":
                if label == NME:
                    continue
                label = title_map.get(label, label)
            passage = store.get(label)
            if passage is None:
                if missing is not None:
                    missing.add(label)
                continue
            passage["metadata"]["passage_id"] = f"{w['doc_id']}_{w['offset']}_{i}"
            positives.append(passage)
        if not positives:
            continue
        yield {
            "id": f"{w['doc_id']}_{w['offset']}",
            "doc_topic": w["doc_topic"],
            "question": w["doc_text"] if "doc_text" in w else w["text"],
            "positive_ctxs": [
                {"text": p["text"], "id": p["id"], "metadata": dict(p["metadata"])} for p in positives
            ],
            "negative_ctxs": "",
            "hard_negative_ctxs": "",
        }
