"""Agreement of relik_jax.text.words with spaCy's English tokenizer (`spacy.blank("en")`) on real documents.

spaCy is not a project dependency: run this with a private venv that has it, e.g.
    python3 -m venv /tmp/spacy-venv && /tmp/spacy-venv/bin/pip install "spacy>=3.7,<3.8" click
    PYTHONPATH=$PWD /tmp/spacy-venv/bin/python benchmarks/studies/words_vs_spacy/words_vs_spacy.py \
        [--out words_vs_spacy.json]
Prints, per corpus, the % of documents tokenized identically (same words and offsets) and the most frequent
differences; writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import time

import spacy
from spacy.lang.en import English

from relik_jax.data import corpora as datasets
from relik_jax.text.words import WordTokenizer


def corpora() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    out["aida (all splits)"] = [
        d.text for split in ("train", "testa", "testb") for d in datasets.read_aida(split)
    ]
    out["conll04 (all splits)"] = [
        s.text for split in ("train", "dev", "test") for s in datasets.read_conll04(split)
    ]
    out["nyt (test+dev)"] = [s.text for split in ("test", "dev") for s in datasets.read_nyt(split)]
    out["rebel-sample (raw Wikipedia)"] = [d.text for d in datasets.read_rebel_sample()]
    out["random punctuation-heavy strings"] = random_strings(0, 20_000, with_exceptions=False)
    out["random strings with spaCy exception keys"] = random_strings(1, 20_000, with_exceptions=True)
    out["random strings of many scripts"] = script_strings(2, 20_000)
    return out


def random_strings(seed: int, n: int, with_exceptions: bool) -> list[str]:
    """Adversarial strings: letters, digits, punctuation, quotes, currency, URLs, abbreviations, emoticons,
    non-Latin letters and whitespace glued together at random (plus spaCy's own exception strings)."""
    rng = random.Random(seed)
    pieces = list("abcdeXYZ0123456789 .,;:!?'\"()[]-/$%&@#*+=<>_~…’“”°€£") + [
        "Mr.", "U.S.", "don't", "http://a.com", "e.g.", " ", " ", " ", "\n", "é", "ß", "Ж", "中", ":)", "'s",
        "n't", "...", "www.x.org", "a.m.",
    ]  # fmt: skip
    keys = list(English.Defaults.tokenizer_exceptions)
    out = []
    for _ in range(n):
        if with_exceptions:
            parts = [
                rng.choice(keys) if rng.random() < 0.4 else rng.choice(pieces)
                for _ in range(rng.randint(1, 8))
            ]
        else:
            parts = [rng.choice(pieces) for _ in range(rng.randint(1, 25))]
        out.append("".join(parts))
    return out


def script_strings(seed: int, n: int) -> list[str]:
    """Letters of many scripts (cased, uncased, ones spaCy does not treat as letters), combining marks and
    compatibility forms glued with punctuation: exercises the letter classes of the infix/suffix rules."""
    rng = random.Random(seed)
    pieces = list("aZéßЖжΩωאבعربক্তதமிতెలుಕನ್ಸිංह्दीአማ한국中文カタひらไทยქართհայ︵ｆＡ①㈱ℕ") + list(
        " .,-–—:;/=<>'\"()!?…~+*^0123456789"
    ) + [" ", "\n", ":)", "Mr.", "U.S.", "...", "--", "a.m."]  # fmt: skip
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 14))) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="words_vs_spacy.json")
    ap.add_argument("--examples", type=int, default=15)
    args = ap.parse_args()
    nlp = spacy.blank("en")
    ours = WordTokenizer()
    report = {"spacy_version": spacy.__version__, "corpora": {}}
    for name, texts in corpora().items():
        diffs: collections.Counter = collections.Counter()
        same = 0
        t_ours = t_spacy = 0.0
        for text in texts:
            t0 = time.perf_counter()
            a = [(w.text, w.start) for w in ours(text)]
            t1 = time.perf_counter()
            b = [(t.text, t.idx) for t in nlp(text)]
            t2 = time.perf_counter()
            t_ours += t1 - t0
            t_spacy += t2 - t1
            if a == b:
                same += 1
                continue
            sa, sb = set(a), set(b)
            # summarise a difference as the (ours, spaCy) words covering the differing region
            only_a = sorted(sa - sb, key=lambda x: x[1])
            only_b = sorted(sb - sa, key=lambda x: x[1])
            lo = min([x[1] for x in only_a + only_b])
            hi = max([x[1] + len(x[0]) for x in only_a + only_b])
            diffs[(" ".join(w for w, s in a if lo <= s < hi), " ".join(w for w, s in b if lo <= s < hi))] += 1
        pct = 100.0 * same / max(1, len(texts))
        print(f"{name}: {same}/{len(texts)} identical ({pct:.2f}%), ours {t_ours:.2f}s spaCy {t_spacy:.2f}s")
        for (x, y), c in diffs.most_common(args.examples):
            print(f"   {c:5d}  ours {x!r:40}  spaCy {y!r}")
        report["corpora"][name] = {
            "documents": len(texts),
            "identical": same,
            "identical_pct": round(pct, 3),
            "seconds_ours": round(t_ours, 3),
            "seconds_spacy": round(t_spacy, 3),
            "top_differences": [[x, y, c] for (x, y), c in diffs.most_common(args.examples)],
        }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
