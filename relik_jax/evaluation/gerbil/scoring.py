"""GERBIL-faithful entity-linking scoring: markings, matching, micro/macro P/R/F1, result tables.

What is replicated from GERBIL (dice-group/gerbil, see shared/reference/gerbil.md §B):
* URI sets are expanded before matching (sameAs, see `uris.UriNormalizer`).
* A marking is InKB when one of its (expanded) URIs starts with a well-known KB namespace, else EE (emerging).
* Meaning match: both InKB -> URI sets must intersect; both EE -> match; mixed -> no match.
* Span match: Ma (strong) = same begin and end; Mw (weak) = overlapping spans.
* Counting: gold markings in order, each takes the first unused prediction that matches (TP) or is a FN;
  unused predictions are FPs.
* Per-document P/R/F1 with GERBIL's edge rules (TP=FP=FN=0 -> 1, 1, 1; TP=0 otherwise -> 0, 0, 0); micro from
  summed counts; macro = mean of per-document P, R and F1 over all documents.
* InKB/EE variants filter gold and predictions to the class, then recount (reported only when the filtered
  counts are not all zero); GSInKB (D2KB) scores gold-InKB markings and the predictions at their spans.
* A2KB also reports its sub-experiments: ERec (span only) and D2KB (predictions filtered to gold spans one per
  gold span, then GERBIL's "Me" matching, which uses the weak span searcher).

Not replicated (needs GERBIL's online entity-existence check): `to_markings(kb_entities=...)` takes an offline
table instead. Running an annotator over the datasets through the NIF service is `run.evaluate_gerbil`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from relik_jax.evaluation.gerbil.nif import NifDocument, NifMention
from relik_jax.evaluation.gerbil.uris import KB_PREFIXES, UriNormalizer, is_kb_uri

# ----------------------------------------------------------------------------------------------------
# Markings and counting
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Marking:
    """A mention ready for matching: span (any consistent unit; NIF uses UTF-16), expanded URIs, class."""

    begin: int
    end: int
    uris: frozenset[str]
    in_kb: bool


def to_markings(
    mentions: Iterable[NifMention],
    normalizer: UriNormalizer | None = None,
    kb_prefixes: Sequence[str] = KB_PREFIXES,
    kb_entities: set[str] | None = None,
) -> list[Marking]:
    """NIF mentions -> markings. Mentions without any URI are dropped (GERBIL keeps only meaning-carrying
    spans
    for A2KB/D2KB). kb_entities (optional): known KB URIs; InKB markings none of whose URIs is known become EE
    (GERBIL's entity checker)."""
    normalizer = normalizer or UriNormalizer()
    out = []
    for m in mentions:
        if not m.uris:
            continue
        uris = normalizer.expand(m.uris)
        in_kb = any(is_kb_uri(u, kb_prefixes) for u in uris)
        if in_kb and kb_entities is not None and not (uris & kb_entities):
            in_kb = False
        out.append(Marking(m.begin, m.end, uris, in_kb))
    return out


@dataclass(frozen=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def _span_match(gold: Marking, pred: Marking, span: str) -> bool:
    if span == "strong":
        return gold.begin == pred.begin and gold.end == pred.end
    if span == "weak":
        # WeakSpanMatchingsSearcher: the later-starting span must start inside the other one
        if pred.begin >= gold.begin:
            return pred.begin < gold.end
        return gold.begin < pred.end
    if span == "none":
        return True
    raise ValueError(f"span matching must be 'strong', 'weak' or 'none', got {span!r}")


def _meaning_match(gold: Marking, pred: Marking) -> bool:
    if gold.in_kb and pred.in_kb:
        return not gold.uris.isdisjoint(pred.uris)
    return not gold.in_kb and not pred.in_kb


def count_matchings(
    gold: Sequence[Marking], pred: Sequence[Marking], span: str, meaning: bool = True
) -> Counts:
    """GERBIL's greedy, gold-ordered, one-to-one counting (MatchingsCounterImpl)."""
    used = [False] * len(pred)
    tp = fn = 0
    for g in gold:
        for i, p in enumerate(pred):
            if not used[i] and _span_match(g, p, span) and (not meaning or _meaning_match(g, p)):
                used[i] = True
                tp += 1
                break
        else:
            fn += 1
    return Counts(tp=tp, fp=len(pred) - tp, fn=fn)


def prf(counts: Counts) -> tuple[float, float, float]:
    """Per-document precision, recall, F1 with GERBIL's edge rules (FMeasureCalculator.calculateMeasures)."""
    if counts.tp == 0:
        return (1.0, 1.0, 1.0) if counts.fp == 0 and counts.fn == 0 else (0.0, 0.0, 0.0)
    p = counts.tp / (counts.tp + counts.fp)
    r = counts.tp / (counts.tp + counts.fn)
    return p, r, 2 * p * r / (p + r)


def prf_exact(counts: Counts) -> tuple[Fraction, Fraction, Fraction]:
    """`prf` in exact fractions (for tests and for macro averages without rounding drift)."""
    if counts.tp == 0:
        one = Fraction(1) if counts.fp == 0 and counts.fn == 0 else Fraction(0)
        return one, one, one
    p = Fraction(counts.tp, counts.tp + counts.fp)
    r = Fraction(counts.tp, counts.tp + counts.fn)
    return p, r, 2 * p * r / (p + r)


@dataclass
class Scores:
    """Counts per document and the GERBIL measures derived from them (exact fractions; floats via float())."""

    per_doc: list[Counts]

    @property
    def total(self) -> Counts:
        out = Counts()
        for c in self.per_doc:
            out = out + c
        return out

    @property
    def micro(self) -> tuple[Fraction, Fraction, Fraction]:
        return prf_exact(self.total)

    @property
    def macro(self) -> tuple[Fraction, Fraction, Fraction]:
        n = len(self.per_doc)
        if n == 0:
            return Fraction(0), Fraction(0), Fraction(0)
        sums = [Fraction(0)] * 3
        for c in self.per_doc:
            sums = [s + v for s, v in zip(sums, prf_exact(c), strict=True)]
        return sums[0] / n, sums[1] / n, sums[2] / n

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        p, r, f = self.micro
        mp, mr, mf = self.macro
        pre = f"{prefix} " if prefix else ""
        return {
            f"{pre}Micro F1 score": float(f),
            f"{pre}Micro Precision": float(p),
            f"{pre}Micro Recall": float(r),
            f"{pre}Macro F1 score": float(mf),
            f"{pre}Macro Precision": float(mp),
            f"{pre}Macro Recall": float(mr),
        }


def _score(gold_docs, pred_docs, span: str, meaning: bool = True) -> Scores:
    return Scores([count_matchings(g, p, span, meaning) for g, p in zip(gold_docs, pred_docs, strict=True)])


def _classified(gold_docs, pred_docs, span: str, gs_inkb: bool = False) -> dict[str, Scores]:
    out = {"all": _score(gold_docs, pred_docs, span)}
    for name, keep in (("InKB", True), ("EE", False)):
        g = [[m for m in doc if m.in_kb == keep] for doc in gold_docs]
        p = [[m for m in doc if m.in_kb == keep] for doc in pred_docs]
        scores = _score(g, p, span)
        t = scores.total
        if t.tp + t.fp + t.fn > 0:  # GERBIL omits a class with nothing in it
            out[name] = scores
    if gs_inkb:
        g = [[m for m in doc if m.in_kb] for doc in gold_docs]
        p = [_at_gold_spans(pd, gd) for gd, pd in zip(g, pred_docs, strict=True)]
        scores = _score(g, p, span)
        t = scores.total
        if t.tp + t.fp + t.fn > 0:
            out["GSInKB"] = scores
    return out


def _at_gold_spans(pred: Sequence[Marking], gold: Sequence[Marking]) -> list[Marking]:
    """Predictions whose span equals the span of some gold marking (GSInKB classification: no one-to-one)."""
    spans = {(g.begin, g.end) for g in gold}
    return [p for p in pred if (p.begin, p.end) in spans]


def _filter_not_matching(pred: Sequence[Marking], gold: Sequence[Marking]) -> list[Marking]:
    """SearcherBasedNotMatchingMarkingFilter with strong spans: in prediction order, a prediction is kept when
    its span equals that of a gold marking not yet claimed, which it then claims (a duplicate is dropped)."""
    free = [True] * len(gold)
    kept = []
    for p in pred:
        for i, g in enumerate(gold):
            if free[i] and g.begin == p.begin and g.end == p.end:
                free[i] = False
                kept.append(p)
                break
    return kept


MATCHINGS = {"Ma": "strong", "Mw": "weak"}


def score_a2kb(
    gold_docs: Sequence[Sequence[Marking]], pred_docs: Sequence[Sequence[Marking]], matching: str = "Ma"
) -> dict[str, dict[str, Scores]]:
    """A2KB and its sub-experiments: {"A2KB": {all, InKB, EE}, "ERec": {all}, "D2KB": {all, InKB, EE,
    GSInKB}}."""
    if matching not in MATCHINGS:
        raise ValueError(f"matching must be one of {sorted(MATCHINGS)}, got {matching!r}")
    if len(gold_docs) != len(pred_docs):
        raise ValueError(f"{len(gold_docs)} gold documents but {len(pred_docs)} prediction lists")
    span = MATCHINGS[matching]
    return {
        "A2KB": _classified(gold_docs, pred_docs, span),
        "ERec": {"all": _score(gold_docs, pred_docs, span, meaning=False)},
        "D2KB": score_d2kb(gold_docs, pred_docs)["D2KB"],
    }


def score_d2kb(
    gold_docs: Sequence[Sequence[Marking]], pred_docs: Sequence[Sequence[Marking]], span: str = "weak"
) -> dict[str, dict[str, Scores]]:
    """D2KB as GERBIL's evaluator: predictions off the gold spans are filtered out (one per gold span), then
    span + meaning counting with InKB/EE/GSInKB classes. span: "weak" for GERBIL's Me (strong entity match,
    which GERBIL maps to its weak span searcher; what A2KB's D2KB sub-experiment uses) or "strong" (Ma)."""
    if len(gold_docs) != len(pred_docs):
        raise ValueError(f"{len(gold_docs)} gold documents but {len(pred_docs)} prediction lists")
    pred = [_filter_not_matching(p, g) for g, p in zip(gold_docs, pred_docs, strict=True)]
    return {"D2KB": _classified(gold_docs, pred, span, gs_inkb=True)}


def score_documents(
    gold: Sequence[NifDocument],
    pred: Sequence[NifDocument],
    matching: str = "Ma",
    same_as: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, dict[str, Scores]]:
    """Score NIF documents against gold NIF documents (matched by position) with A2KB + sub-experiments."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold documents but {len(pred)} predicted documents")
    normalizer = UriNormalizer(same_as)
    return score_a2kb(
        [to_markings(d.mentions, normalizer) for d in gold],
        [to_markings(d.mentions, normalizer) for d in pred],
        matching,
    )


# ----------------------------------------------------------------------------------------------------
# Results and tables
# ----------------------------------------------------------------------------------------------------


@dataclass
class DatasetResult:
    """Everything GERBIL reports for one (annotator, dataset) experiment."""

    dataset: str
    experiment: str
    matching: str
    n_docs: int
    n_gold: int
    scores: dict[str, dict[str, Scores]]
    avg_millis_per_doc: float = 0.0
    error_count: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def measures(self, sub: str | None = None) -> dict[str, float]:
        """GERBIL-named measures of the main experiment (or of a sub-experiment: ERec, D2KB)."""
        out: dict[str, float] = {}
        for cls, scores in self.scores[sub or self.experiment].items():
            out.update(scores.as_dict("" if cls == "all" else cls))
        if sub is None:
            out["avg millis/doc"] = self.avg_millis_per_doc
            out["Error Count"] = float(self.error_count)
        return out


TABLE_COLUMNS = (
    "Micro F1 score",
    "Micro Precision",
    "Micro Recall",
    "Macro F1 score",
    "InKB Micro F1 score",
    "InKB Micro Precision",
    "InKB Micro Recall",
    "InKB Macro F1 score",
    "EE Micro F1 score",
    "avg millis/doc",
    "Error Count",
)


def format_table(results: Sequence[DatasetResult], columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """GERBIL-like result table: one row per dataset, one column per measure (F1/P/R as percentages)."""
    short = {
        "Micro F1 score": "Mi-F1",
        "Micro Precision": "Mi-P",
        "Micro Recall": "Mi-R",
        "Macro F1 score": "Ma-F1",
        "InKB Micro F1 score": "InKB Mi-F1",
        "InKB Micro Precision": "InKB Mi-P",
        "InKB Micro Recall": "InKB Mi-R",
        "InKB Macro F1 score": "InKB Ma-F1",
        "EE Micro F1 score": "EE Mi-F1",
        "avg millis/doc": "ms/doc",
        "Error Count": "errors",
    }
    header = ["dataset", "exp", "docs", "gold"] + [short.get(c, c) for c in columns]
    rows = []
    for res in results:
        m = res.measures()
        row = [res.dataset, f"{res.experiment}/{res.matching}", str(res.n_docs), str(res.n_gold)]
        for c in columns:
            if c not in m:
                row.append("-")
            elif c == "Error Count":
                row.append(str(int(m[c])))
            elif c == "avg millis/doc":
                row.append(f"{m[c]:.2f}")
            else:
                row.append(f"{100 * m[c]:.2f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append(
            "  ".join(
                v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def format_details(result: DatasetResult) -> str:
    """All measures of one dataset as GERBIL lists them: one row per measure, one column per (sub-)experiment
    (A2KB, ERec, D2KB); "-" where GERBIL reports nothing (a class without markings)."""
    subs = list(result.scores)
    per_sub = {sub: result.measures(None if sub == result.experiment else sub) for sub in subs}
    names: list[str] = []
    for sub in subs:
        names.extend(n for n in per_sub[sub] if n not in names and n not in ("avg millis/doc", "Error Count"))
    title = f"{result.dataset} ({result.experiment}/{result.matching}, {result.n_docs} docs, "
    title += f"{result.n_gold} gold)"
    width = max(len(n) for n in names)
    lines = [title, "measure".ljust(width) + "".join(f"  {s:>8}" for s in subs)]
    for n in names:
        cells = "".join(f"  {100 * per_sub[s][n]:8.2f}" if n in per_sub[s] else f"  {'-':>8}" for s in subs)
        lines.append(n.ljust(width) + cells)
    lines.append(f"{'avg millis/doc'.ljust(width)}  {result.avg_millis_per_doc:8.2f}")
    lines.append(f"{'Error Count'.ljust(width)}  {result.error_count:8d}")
    return "\n".join(lines)
