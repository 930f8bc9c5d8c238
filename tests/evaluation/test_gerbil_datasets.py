"""Every GERBIL dataset loads with the document and mention counts stated in its shared/data/*/SOURCE.md."""

import pytest

from relik_jax.evaluation.gerbil.datasets import load_gerbil_dataset
from relik_jax.evaluation.gerbil.nif import utf16_slice

DBR = "http://dbpedia.org/resource/"


def kinds(ds):
    """(mentions with a DBpedia resource URI of any language, with a notInWiki URI) over all documents."""
    kb = sum(any("dbpedia.org/resource/" in u for u in m.uris) for d in ds.documents for m in d.mentions)
    nil = sum(any("/notInWiki" in u for u in m.uris) for d in ds.documents for m in d.mentions)
    return kb, nil


def test_kore50():
    # SOURCE.md: 50 sentences, 144 mentions, all 144 linked to DBpedia
    ds = load_gerbil_dataset("kore50")
    assert (len(ds.documents), ds.n_mentions) == (50, 144)
    assert kinds(ds) == (144, 0)
    doc = next(d for d in ds.documents if d.uri.endswith("/CEL01#char=0,"))
    assert doc.text.startswith("David and Victoria named their children")
    assert (doc.mentions[0].begin, doc.mentions[0].end, doc.mentions[0].uris) == (
        0,
        5,
        (DBR + "David_Beckham",),
    )


def test_n3_reuters128_and_rss500():
    # SOURCE.md: Reuters-128 128 documents, 880 mentions: 650 DBpedia, 230 notInWiki
    ds = load_gerbil_dataset("reuters-128")
    assert (len(ds.documents), ds.n_mentions, kinds(ds)) == (128, 880, (650, 230))
    # 16 of the 650 are German DBpedia URIs (de.dbpedia.org), outside GERBIL's default KB namespaces
    german = sum(m.uris[0].startswith("http://de.dbpedia.org/") for d in ds.documents for m in d.mentions)
    assert german == 16
    # SOURCE.md: RSS-500 500 sentences, 1,000 mentions (exactly 2 per sentence): 524 DBpedia (one written
    # .../page/...), 476 notInWiki
    ds = load_gerbil_dataset("rss-500")
    assert (len(ds.documents), ds.n_mentions, kinds(ds)) == (500, 1000, (523, 476))
    assert {len(d.mentions) for d in ds.documents} == {2}
    page = [m for d in ds.documents for m in d.mentions if m.uris[0].startswith("http://dbpedia.org/page/")]
    assert [m.uris for m in page] == [("http://dbpedia.org/page/Nebraska_Cornhuskers_football",)]


def test_oke():
    # SOURCE.md: OKE 2015 eval 101 sentences / 664 mentions, 320 sameAs; train 95 / 341, 255 sameAs
    for name, docs, mentions, same_as in (("oke-2015", 101, 664, 320), ("oke-2015-train", 95, 341, 255)):
        ds = load_gerbil_dataset(name)
        assert (len(ds.documents), ds.n_mentions, ds.stats["same_as"]) == (docs, mentions, same_as), name
    # SOURCE.md: OKE 2016 eval 55 sentences / 340 mentions, 176 sameAs (3 of the 176 statements are repeated
    # resource blocks, so the graph holds 173 distinct ones)
    ds = load_gerbil_dataset("oke-2016")
    assert (len(ds.documents), ds.n_mentions, ds.stats["same_as"]) == (55, 340, 173)
    # SOURCE.md: train 196 sentences / 1,051 mentions "in the NIF" = 1,051 itsrdf:taIdentRef statements; they
    # sit on 1,050 phrases (one phrase has two URIs), one of which points to a context that does not exist
    # (sentence-177#char=0,169) and is dropped as GERBIL drops it -> 1,049 mentions (= ELEVANT's 1,049 labels)
    ds = load_gerbil_dataset("oke-2016-train")
    assert len(ds.documents) == 196
    assert (ds.stats["links_in_file"], ds.stats["phrases_in_file"], ds.n_mentions) == (1051, 1050, 1049)
    assert ds.stats["same_as"] == 570


def test_msnbc():
    # SOURCE.md: 20 documents; 755 mentions, 747 with a Wikipedia URL, 8 without
    ds = load_gerbil_dataset("msnbc")
    assert len(ds.documents) == 20
    assert (ds.stats["mentions_in_file"], ds.stats["linked"], ds.stats["nil"]) == (755, 747, 8)
    # GERBIL's mergeSubNamedEntity then removes 8 mentions nested in a longer one with the same entity
    assert ds.n_mentions == 747
    doc = next(d for d in ds.documents if d.uri.endswith("Bus16451112.txt"))
    first = doc.mentions[0]
    assert (first.begin, first.end, utf16_slice(doc.text, first.begin, first.end)) == (0, 10, "Home Depot")
    assert "http://en.wikipedia.org/wiki/Home_Depot" in first.uris and DBR + "Home_Depot" in first.uris


def test_derczynski():
    # SOURCE.md: 183 tweets, 292 mentions, 82 NIL
    ds = load_gerbil_dataset("derczynski")
    assert (len(ds.documents), ds.n_mentions, kinds(ds)) == (183, 292, (210, 82))
    doc = ds.documents[0]  # "#Astros lineup for tonight . Keppinger sits , ..."
    assert (doc.mentions[0].begin, doc.mentions[0].end, doc.mentions[0].uris) == (
        0,
        7,
        (DBR + "Houston_Astros",),
    )


@pytest.mark.parametrize(
    ("split", "docs", "mentions", "linked", "nil"),
    [("testa", 216, 5917, 4791, 1126), ("testb", 231, 5616, 4485, 1131), ("train", 946, 23396, 18541, 4855)],
)
def test_aida(split, docs, mentions, linked, nil):
    # SOURCE.md counts table: docs, mentions, linked (non-NIL), NIL per split
    ds = load_gerbil_dataset(f"aida-{split}")
    assert (len(ds.documents), ds.n_mentions, ds.stats["linked"], ds.stats["nil"]) == (
        docs,
        mentions,
        linked,
        nil,
    )
    if split == "testb":
        doc = ds.documents[0]
        # GERBIL's detokenisation: no space before "," and "."; tokens otherwise joined by spaces
        assert doc.text.startswith("SOCCER - JAPAN GET LUCKY WIN, CHINA IN SURPRISE DEFEAT.")
        m = doc.mentions[0]
        assert (m.begin, m.end, doc.text[m.begin : m.end]) == (9, 14, "JAPAN")
        assert set(m.uris) == {
            "http://en.wikipedia.org/wiki/Japan_national_football_team",
            DBR + "Japan_national_football_team",
        }


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown GERBIL dataset 'nope'"):
        load_gerbil_dataset("nope")
