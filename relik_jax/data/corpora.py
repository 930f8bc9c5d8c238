"""Readers for the shared datasets, and converters to the reference's data formats.

Readers are generators of plain dataclasses with char offsets (Python `str` indices) into `text`:
- `read_aida(split)` -> `LabelledDocument` (EL; mentions labelled with 2010 Wikipedia titles, `NME` = `--NME--`);
- `read_conll04(split)`, `read_nyt(split)`, `read_rebel_sample()` -> `LabelledDocument` with entity mentions and
  `triplets`;
- `read_wikidata_properties()`, `nyt_relation_names()`, `read_rebel_relation_counts()` -> relation types.

`rebel_splits` cuts the REBEL sample (no official split) into train / dev / test. Converters to the reference's
formats live in `relik_jax.data.windowing`, JSONL helpers in `relik_jax.data.jsonl`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relik_jax.labels import NME
from relik_jax.paths import data_path

NYT_ENTITY_TYPE = "ENTITY"  # the NYT files carry no entity types

__all__ = [
    "NME",
    "NYT_ENTITY_TYPE",
    "Mention",
    "TripletLabel",
    "LabelledDocument",
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
    "rebel_splits",
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
class LabelledDocument:
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


def read_aida(split: str = "testb", path: str | Path | None = None) -> Iterator[LabelledDocument]:
    """AIDA-CoNLL documents of one split (`train`, `testa`, `testb`) from the official AIDA-YAGO2 TSV.

    Text = the CoNLL tokens joined by single spaces (as ZELDA's test_aida-b.jsonl); mention label = the
    Wikipedia title of the URL column with spaces (2010 titles), or `NME` for `--NME--` mentions."""
    if split not in _AIDA_SPLITS:
        raise ValueError(f"AIDA split must be one of {_AIDA_SPLITS}, got {split!r}")
    path = Path(path) if path else data_path("aida-conll", "AIDA-YAGO2-dataset.tsv")
    doc_id: str | None = None
    words: list[str] = []
    spans: list[list[Any]] = []  # [word_start, word_end, label]

    def flush() -> LabelledDocument | None:
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
        return LabelledDocument(doc_id, text, mentions, [], list(words), offsets, doc_split, topic)

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


def read_conll04(split: str = "test", path: str | Path | None = None) -> Iterator[LabelledDocument]:
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
        yield LabelledDocument(f"{split}-{i}", text, mentions, triplets, list(row["tokens"]), offsets, split)


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
) -> Iterator[LabelledDocument]:
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
            yield LabelledDocument(doc_id, text, mentions, triplets, words, offsets, split)


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


def read_rebel_sample(path: str | Path | None = None, stats: RebelStats | None = None) -> Iterator[LabelledDocument]:
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
            yield LabelledDocument(str(row["docid"]), text, mentions, triplets, topic=row["title"])


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


def rebel_splits(docs: Sequence[LabelledDocument]) -> dict[str, list[LabelledDocument]]:
    """REBEL sample train / dev / test: the first 80% / next 10% / last 10% of the documents."""
    n = len(docs)
    cut = [int(n * 0.8), int(n * 0.9)]
    return {"train": list(docs[: cut[0]]), "dev": list(docs[cut[0]: cut[1]]), "test": list(docs[cut[1]:])}
