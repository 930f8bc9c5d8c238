"""A built-in toy dataset (generated in code, no files) for smoke runs of the reader trainer: `configs/tiny.py`.

Sentences are made from templates over a small world of people, organisations and cities; every mention is
labelled with its entity title (EL) and its type (cIE), and the templates carry relations (RE):
`Work_For(person, org)`, `Live_In(person, city)`, `OrgBased_In(org, city)`. A tiny random backbone learns it in a
few hundred steps on CPU, which is what the CLI and trainer tests need. `toy_tokenizer` trains a small WordPiece
vocabulary on the toy text ([PAD]/[CLS]/[SEP]/[UNK] = 0..3, [MASK] added after the vocabulary).
"""

from __future__ import annotations

import numpy as np
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers

from relik_jax.data.corpora import LabelledDocument, Mention, TripletLabel

PEOPLE = ["Alice Smith", "Bob Jones", "Carla Diaz", "David Brown", "Erin Clark", "Frank Miller", "Grace Lee",
          "Henry Adams", "Irene Moss", "Jack White", "Karen Young", "Leo Grant"]
ORGS = ["Acme Corp", "Globex", "Initech", "Umbrella Labs", "Stark Industries", "Wayne Group", "Hooli",
        "Vandelay Imports"]
CITIES = ["Paris", "Berlin", "Madrid", "Rome", "Lisbon", "Vienna", "Oslo", "Dublin", "Prague", "Athens"]
TYPES = {"PER": PEOPLE, "ORG": ORGS, "LOC": CITIES}
RELATIONS = ["Work_For", "Live_In", "OrgBased_In"]
# (template, slot entity types, relations over slot indices); slots are {0}, {1}, ...
TEMPLATES: list[tuple[str, list[str], list[tuple[int, str, int]]]] = [
    ("{0} works for {1} .", ["PER", "ORG"], [(0, "Work_For", 1)]),
    ("{0} lives in {1} .", ["PER", "LOC"], [(0, "Live_In", 1)]),
    ("{0} is based in {1} .", ["ORG", "LOC"], [(0, "OrgBased_In", 1)]),
    ("Yesterday {0} , who works for {1} , moved to {2} .", ["PER", "ORG", "LOC"], [(0, "Work_For", 1),
                                                                                    (0, "Live_In", 2)]),
    ("{0} opened an office in {1} last year .", ["ORG", "LOC"], [(0, "OrgBased_In", 1)]),
    ("{0} met {1} in {2} .", ["PER", "PER", "LOC"], []),
    ("The weather in {0} was cold .", ["LOC"], []),
    ("{0} hired {1} , a resident of {2} .", ["ORG", "PER", "LOC"], [(1, "Work_For", 0), (1, "Live_In", 2)]),
]


def title(name: str) -> str:
    """Entity title (what candidates show): the name plus a disambiguating word, as Wikipedia titles do."""
    for kind, names in TYPES.items():
        if name in names:
            return f"{name} ({ {'PER': 'person', 'ORG': 'company', 'LOC': 'city'}[kind] })"
    raise KeyError(name)


def all_titles() -> list[str]:
    return [title(n) for names in TYPES.values() for n in names]


def documents(n: int, seed: int, split: str = "train") -> list[LabelledDocument]:
    """`n` documents of 1-2 sentences each, deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        text, mentions, triplets = "", [], []
        for _ in range(int(rng.integers(1, 3))):
            tpl, kinds, rels = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
            names: list[str] = []
            for k in kinds:
                pool = [x for x in TYPES[k] if x not in names]
                names.append(pool[int(rng.integers(len(pool)))])
            parts = tpl.split(" ")
            slot_mentions: dict[int, Mention] = {}
            for part in parts:
                if text:
                    text += " "
                if part.startswith("{") and part.endswith("}"):
                    slot = int(part[1:-1])
                    start = len(text)
                    text += names[slot]
                    slot_mentions[slot] = Mention(start, len(text), title(names[slot]), names[slot])
                    mentions.append(slot_mentions[slot])
                else:
                    text += part
            for s, r, o in rels:
                triplets.append(TripletLabel(slot_mentions[s], r, slot_mentions[o]))
        docs.append(LabelledDocument(f"{split}-{i}", text, mentions, triplets, text.split(" "),
                             _offsets(text), split))
    return docs


def entity_type(mention_title: str) -> str:
    return {"person": "PER", "company": "ORG", "city": "LOC"}[mention_title.rsplit("(", 1)[1].rstrip(")")]


def _offsets(text: str) -> list[tuple[int, int]]:
    out, pos = [], 0
    for w in text.split(" "):
        out.append((pos, pos + len(w)))
        pos += len(w) + 1
    return out


def toy_tokenizer(vocab_size: int = 1000) -> Tokenizer:
    """WordPiece tokenizer over the toy world (names, titles, templates, relation names): every word of it is one
    piece, plus every character (and `##` continuation) for anything else. Built, not trained, so that the ids are
    the same in every process (WordPiece training breaks frequency ties in hash-map order)."""
    corpus = [t for t, _, _ in TEMPLATES] + all_titles() + PEOPLE + ORGS + CITIES + RELATIONS
    corpus += [" ".join(r.split("_")) for r in RELATIONS] + ["person company city PER ORG LOC --NME--"]
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = {w for text in corpus for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))}
    chars = sorted({c for w in words for c in w})
    pieces = ["[PAD]", "[CLS]", "[SEP]", "[UNK]"] + chars + ["##" + c for c in chars] + sorted(words - set(chars))
    if len(pieces) > vocab_size:
        raise ValueError(f"toy vocabulary needs {len(pieces)} pieces, vocab_size is {vocab_size}")
    tok = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in pieces[:4]])
    # [MASK] as an added token right before the reader symbols, as in DeBERTa-v3 (the span reader's symbol-id
    # threshold at inference is one below the first symbol: relik-reference.md §1.3)
    tok.add_special_tokens([AddedToken("[MASK]", normalized=False, special=True)])
    return tok
