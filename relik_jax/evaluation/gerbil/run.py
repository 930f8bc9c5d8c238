"""Run an annotator over the GERBIL datasets exactly as GERBIL would: NIF over loopback HTTP, then scoring."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from relik_jax.evaluation.gerbil.client import NifClient
from relik_jax.evaluation.gerbil.datasets import load_gerbil_dataset
from relik_jax.evaluation.gerbil.scoring import (
    MATCHINGS,
    DatasetResult,
    format_details,
    format_table,
    score_a2kb,
    score_d2kb,
    to_markings,
)
from relik_jax.evaluation.gerbil.service import Annotator, serve_nif
from relik_jax.evaluation.gerbil.uris import UriNormalizer

DEFAULT_DATASETS: tuple[str, ...] = (
    "kore50",
    "reuters-128",
    "rss-500",
    "oke-2015",
    "oke-2016",
    "msnbc",
    "derczynski",
    "aida-testa",
    "aida-testb",
)


def evaluate_gerbil(
    annotator: Annotator,
    datasets: Sequence[str] = DEFAULT_DATASETS,
    matching: str = "Ma",
    experiment: str = "A2KB",
    clients: int = 4,
    max_batch: int = 32,
    print_table: bool = True,
    print_details: bool = False,
    redirects: Mapping[str, Iterable[str]] | None = None,
) -> list[DatasetResult]:
    """Run `annotator` over GERBIL datasets exactly as GERBIL would: every document is POSTed as NIF to a
    loopback NIF service wrapping the annotator, the NIF answer is parsed and scored.

    annotator(texts) -> per text a list of (char_start, char_end_exclusive, wikipedia_title), Python offsets.
    experiment: "A2KB" (text only) or "D2KB" (gold spans sent along; predictions off gold spans are ignored;
    scored with GERBIL's "Me" matching).
    Returns one DatasetResult per dataset; prints the summary table (print_table) and every dataset's full
    measure list (print_details).
    """
    if experiment not in ("A2KB", "D2KB"):
        raise ValueError(f"experiment must be 'A2KB' or 'D2KB', got {experiment!r}")
    if matching not in MATCHINGS:
        raise ValueError(f"matching must be one of {sorted(MATCHINGS)}, got {matching!r}")
    results = []
    server = serve_nif(annotator, host="127.0.0.1", port=0, max_batch=max_batch, block=False)
    try:
        for name in datasets:
            ds = load_gerbil_dataset(name)
            client = NifClient(server.url + "/" + ds.uri_style)
            timings: list[float] = []
            answers = client.annotate_many(
                ds.documents, clients=clients, with_gold_spans=experiment == "D2KB", timings_ms=timings
            )
            normalizer = UriNormalizer(ds.same_as, redirects)
            gold = [to_markings(d.mentions, normalizer) for d in ds.documents]
            pred = [to_markings(a.mentions, normalizer) if a is not None else [] for a in answers]
            scores = score_a2kb(gold, pred, matching) if experiment == "A2KB" else score_d2kb(gold, pred)
            results.append(
                DatasetResult(
                    dataset=name,
                    experiment=experiment,
                    matching=matching if experiment == "A2KB" else "Me",
                    n_docs=len(ds.documents),
                    n_gold=sum(len(g) for g in gold),
                    scores=scores,
                    # GERBIL times each request; with clients > 1 requests overlap (and may share a batch)
                    avg_millis_per_doc=sum(timings) / max(1, len(timings)),
                    error_count=sum(a is None for a in answers),
                )
            )
    finally:
        server.shutdown()
    if print_details:
        for res in results:
            print(format_details(res) + "\n")
    if print_table:
        print(format_table(results))
    return results
