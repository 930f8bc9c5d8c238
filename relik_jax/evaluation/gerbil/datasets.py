"""Loaders for the GERBIL entity-linking datasets in ../shared/data, each as GERBIL reads it.

Every loader returns a `GerbilDataset`: NIF documents (offsets in UTF-16 code units, as GERBIL counts them),
dataset-level `owl:sameAs` links (OKE), the URI style the annotator should answer with (GERBIL/SpEL
convention:
Wikipedia URLs for AIDA and MSNBC, DBpedia resources otherwise; the scorer bridges both anyway) and raw counts
from the source files (checked against each SOURCE.md by tests/evaluation/test_gerbil_datasets.py).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from relik_jax.evaluation.gerbil.nif import NifDocument, NifMention, OffsetMap, read_nif, utf16_len
from relik_jax.evaluation.gerbil.uris import NOT_IN_WIKI, java_url_encode, title_to_uri
from relik_jax.labels import NME
from relik_jax.paths import data_path


@dataclass
class GerbilDataset:
    name: str
    documents: list[NifDocument]
    same_as: dict[str, set[str]] = field(default_factory=dict)
    uri_style: str = "dbpedia"
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def n_mentions(self) -> int:
        return sum(len(d.mentions) for d in self.documents)


# ----------------------------------------------------------------------------------------------------
# NIF datasets (KORE50, N3 Reuters-128 / RSS-500, OKE 2015 / 2016 task 1)
# ----------------------------------------------------------------------------------------------------


def load_nif_dataset(name: str, path: Path, uri_style: str = "dbpedia") -> GerbilDataset:
    """A NIF gold file as GERBIL's FileBasedNIFDataset reads it: offsets as written, orphan phrases
    dropped."""
    corpus = read_nif(str(path), strict=False)
    stats = {
        "documents": len(corpus.documents),
        "mentions": sum(len(d.mentions) for d in corpus.documents),
        "phrases_in_file": sum(len(d.mentions) for d in corpus.documents) + corpus.orphan_phrases,
        "orphan_phrases": corpus.orphan_phrases,
        "links_in_file": corpus.n_links + corpus.orphan_links,
        "same_as": sum(len(v) for v in corpus.same_as.values()),
    }
    return GerbilDataset(name, corpus.documents, corpus.same_as, uri_style, stats)


def load_kore50() -> GerbilDataset:
    return load_nif_dataset("kore50", data_path("kore50", "nif", "kore50-nif.ttl"))


def load_reuters128() -> GerbilDataset:
    return load_nif_dataset("reuters-128", data_path("reuters-128", "nif", "Reuters-128.ttl"))


def load_rss500() -> GerbilDataset:
    return load_nif_dataset("rss-500", data_path("rss-500", "nif", "RSS-500.ttl"))


def load_oke(year: int, split: str = "eval") -> GerbilDataset:
    """OKE task 1 (year 2015 or 2016); split "eval" (GERBIL's evaluation dataset) or "train"."""
    files = {"eval": "evaluation-dataset-task1.ttl", "train": "dataset_task_1.ttl"}
    if year not in (2015, 2016) or split not in files:
        raise ValueError(f"OKE task 1 exists for year 2015/2016 and split eval/train, got {year}, {split!r}")
    suffix = "" if split == "eval" else "-train"
    return load_nif_dataset(f"oke-{year}{suffix}", data_path(f"oke-{year}", "nif", files[split]))


# ----------------------------------------------------------------------------------------------------
# MSNBC (Cucerzan 2007, original format)
# ----------------------------------------------------------------------------------------------------


def _msnbc_uris(annotation: str, surface: str) -> tuple[str, ...]:
    # MSNBCDataset.addDBpediaUris: the Wikipedia URL plus its DBpedia form.
    uris = {annotation, annotation.replace("en.wikipedia.org/wiki", "dbpedia.org/resource")}
    uris.add(annotation.replace("wikipedia.org/wiki", "dbpedia.org/resource"))
    return tuple(sorted(uris))


def load_msnbc() -> GerbilDataset:
    """MSNBC as GERBIL's MSNBCDataset: Problems/*.txt annotations over RawTextsSimpleChars_utf8/*.txt.

    Offsets are Java string offsets (UTF-16). As in GERBIL, a mention that lies inside a longer mention
    with an
    overlapping URI set is merged away. Non-URL annotations (`*null*`) are NIL: they get a generated
    notInWiki URI (any non-KB URI is an emerging entity for GERBIL; the literal `*null*` is not a valid IRI).
    """
    root = data_path("msnbc", "original")
    docs: list[NifDocument] = []
    raw = linked = nil = 0
    for ann_file in sorted((root / "Problems").glob("*.txt")):
        tree = ET.parse(ann_file).getroot()
        file_name = (tree.findtext("ReferenceFileName") or "").strip()
        if not file_name:
            raise ValueError(f"{ann_file}: no <ReferenceFileName>")
        with open(root / "RawTextsSimpleChars_utf8" / file_name, encoding="utf-8", newline="") as f:
            text = f.read()
        nes = []
        for inst in tree.iter("ReferenceInstance"):
            surface = (inst.findtext("SurfaceForm") or "").strip()
            begin = int((inst.findtext("Offset") or "").strip())
            length = int((inst.findtext("Length") or "").strip())
            annotation = (inst.findtext("ChosenAnnotation") or "").strip()
            raw += 1
            if annotation.startswith("http"):
                linked += 1
            else:
                nil += 1
            nes.append([begin, length, set(_msnbc_uris(annotation, surface)), surface, annotation])
        nes = _merge_sub_named_entities(nes)
        mentions = []
        for begin, length, uris, surface, annotation in nes:
            if not annotation.startswith("http"):
                uris = {NOT_IN_WIKI + java_url_encode(surface)}
            mentions.append(NifMention(begin, begin + length, tuple(sorted(uris)), anchor=surface))
        mentions.sort(key=lambda m: (m.begin, m.end, m.uris))
        docs.append(NifDocument(f"http://msnbc/{file_name}", text, mentions))
    stats = {"documents": len(docs), "mentions_in_file": raw, "linked": linked, "nil": nil}
    stats["mentions"] = sum(len(d.mentions) for d in docs)
    return GerbilDataset("msnbc", docs, {}, "wikipedia", stats)


def _merge_sub_named_entities(nes: list[list]) -> list[list]:
    """MSNBCDataset.mergeSubNamedEntity: sort by length (stable), drop a span inside a later (longer or equal)
    span whose URI set overlaps its own."""
    order = sorted(range(len(nes)), key=lambda k: nes[k][1])
    remove = set()
    for a, i in enumerate(order):
        bi, li, ui = nes[i][0], nes[i][1], nes[i][2]
        for j in order[a + 1 :]:
            bj, lj, uj = nes[j][0], nes[j][1], nes[j][2]
            if bi >= bj and bi + li <= bj + lj and not ui.isdisjoint(uj):
                remove.add(i)
                break
    return [ne for k, ne in enumerate(nes) if k not in remove]


# ----------------------------------------------------------------------------------------------------
# Derczynski (tweets; only ELEVANT's Wikidata conversion is public)
# ----------------------------------------------------------------------------------------------------


def load_derczynski() -> GerbilDataset:
    """Derczynski IPM NEL from ELEVANT JSONL. Linked labels -> DBpedia URI of the Wikidata label (`name`,
    usually
    the Wikipedia title); `<NIL>`/`<NO_MAPPING>` -> generated notInWiki URI (emerging entity)."""
    path = data_path("derczynski", "elevant", "derczynski.benchmark.jsonl")
    docs = []
    nil = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            text = rec["text"]
            offsets = OffsetMap(text)
            mentions = []
            for label in rec["labels"]:
                start, end = label["span"]
                surface = text[start:end]
                if str(label["entity_id"]).startswith("Q"):
                    uri = title_to_uri(label["name"], "dbpedia")
                else:
                    nil += 1
                    uri = NOT_IN_WIKI + java_url_encode(surface)
                mentions.append(
                    NifMention(offsets.to_utf16(start), offsets.to_utf16(end), (uri,), anchor=surface)
                )
            mentions.sort(key=lambda m: (m.begin, m.end, m.uris))
            docs.append(NifDocument(f"http://derczynski/{rec['id']}", text, mentions))
    stats = {"documents": len(docs), "mentions": sum(len(d.mentions) for d in docs), "nil": nil}
    return GerbilDataset("derczynski", docs, {}, "dbpedia", stats)


# ----------------------------------------------------------------------------------------------------
# AIDA/CoNLL (AIDA-YAGO2-dataset.tsv)
# ----------------------------------------------------------------------------------------------------

_NO_SPACE_BEFORE = set("?!,)].}")
_NO_SPACE_AFTER = set("([{")


def _java_is_letter_or_digit(ch: str) -> bool:
    return ch.isalpha() or ch.isdecimal()


def load_aida(split: str = "testb") -> GerbilDataset:
    """AIDA/CoNLL split ("train", "testa", "testb") with GERBIL's AIDACoNLLDataset detokenisation: tokens
    joined by
    spaces except before `? ! , ) ] } .` and tokens not starting with a letter/digit, after `( [ {`, and
    inside
    paired double quotes. Linked mentions carry their Wikipedia URL and DBpedia URI; `--NME--` mentions get
    GERBIL's generated notInWiki URI (emerging entities)."""
    if split not in ("train", "testa", "testb"):
        raise ValueError(f"AIDA split must be 'train', 'testa' or 'testb', got {split!r}")
    path = data_path("aida-conll", "AIDA-YAGO2-dataset.tsv")
    name = f"aida-{split}"
    prefix = f"http://{name}/"
    wiki = "http://en.wikipedia.org/wiki/"
    all_docs: list[tuple[str, str, list[NifMention]]] = []
    text: list[str] = []
    text_len = 0  # UTF-16 length of the text built so far
    mentions: list[list] = []
    doc_id = None
    quote_seen = False
    space_behind = True  # GERBIL keeps this flag across documents
    last = None

    def flush() -> None:
        if doc_id is not None:
            all_docs.append((doc_id, "".join(text), mentions))

    with open(path, encoding="utf-8") as f:
        for raw_line in f:
            cols = raw_line.rstrip("\n").split("\t")
            token = cols[0]
            if token.startswith("-DOCSTART-"):
                flush()
                doc_id = token[len("-DOCSTART- (") : -1] if token.endswith(")") else token
                text, text_len, mentions, quote_seen, last = [], 0, [], False, None
                continue
            if not token:
                continue
            space_front, space_behind = space_behind, True
            if text_len > 0:
                if len(token) == 1:
                    ch = token
                    if ch in _NO_SPACE_BEFORE:
                        space_front = False
                    elif ch == '"':
                        if not quote_seen:
                            space_behind = False
                        else:
                            space_front = False
                        quote_seen = not quote_seen
                    elif ch in _NO_SPACE_AFTER:
                        space_behind = False
                elif not _java_is_letter_or_digit(token[0]):
                    space_front = False
                if space_front:
                    text.append(" ")
                    text_len += 1
            if len(cols) > 1 and cols[1]:
                if cols[1] == "B":
                    if cols[3] == NME:
                        uris = (prefix + "notInWiki/" + java_url_encode(cols[2]),)
                    elif len(cols) > 4 and cols[4].startswith(wiki):
                        uris = (cols[4], "http://dbpedia.org/resource/" + cols[4][len(wiki) :])
                    else:
                        uris = (cols[4],) if len(cols) > 4 else ()
                    last = [text_len, text_len, tuple(sorted(set(uris)))]
                    mentions.append(last)
            else:
                last = None
            text.append(token)
            text_len += utf16_len(token)
            if last is not None:
                last[1] = text_len
        flush()
    docs = []
    n_nil = 0
    for index, (doc_id, doc_text, ms) in enumerate(all_docs):
        in_split = (
            ("testa" in doc_id)
            if split == "testa"
            else ("testb" in doc_id)
            if split == "testb"
            else ("testa" not in doc_id and "testb" not in doc_id)
        )
        if not in_split:
            continue
        # Java's trim() drops leading/trailing chars <= ' ' (none are produced here, offsets stay valid)
        nif_ms = [NifMention(b, e, uris) for b, e, uris in ms]
        n_nil += sum(1 for m in nif_ms if "/notInWiki/" in m.uris[0])
        nif_ms.sort(key=lambda m: (m.begin, m.end, m.uris))
        docs.append(NifDocument(f"{prefix}{index}", doc_text, nif_ms))
    stats = {"documents": len(docs), "mentions": sum(len(d.mentions) for d in docs), "nil": n_nil}
    stats["linked"] = stats["mentions"] - n_nil
    return GerbilDataset(name, docs, {}, "wikipedia", stats)


# ----------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------

LOADERS: dict[str, Callable[[], GerbilDataset]] = {
    "kore50": load_kore50,
    "reuters-128": load_reuters128,
    "rss-500": load_rss500,
    "oke-2015": lambda: load_oke(2015, "eval"),
    "oke-2015-train": lambda: load_oke(2015, "train"),
    "oke-2016": lambda: load_oke(2016, "eval"),
    "oke-2016-train": lambda: load_oke(2016, "train"),
    "msnbc": load_msnbc,
    "derczynski": load_derczynski,
    "aida-train": lambda: load_aida("train"),
    "aida-testa": lambda: load_aida("testa"),
    "aida-testb": lambda: load_aida("testb"),
}
NIF_DATASETS = (
    "kore50",
    "reuters-128",
    "rss-500",
    "oke-2015",
    "oke-2015-train",
    "oke-2016",
    "oke-2016-train",
)


def load_gerbil_dataset(name: str) -> GerbilDataset:
    """Load a GERBIL dataset by name (see LOADERS) or from a NIF file path."""
    if name in LOADERS:
        return LOADERS[name]()
    if Path(name).suffix in (".ttl", ".nif") and Path(name).exists():
        return load_nif_dataset(Path(name).stem, Path(name))
    raise ValueError(
        f"unknown GERBIL dataset {name!r}; known: {', '.join(LOADERS)} (or a path to a .ttl file)"
    )
