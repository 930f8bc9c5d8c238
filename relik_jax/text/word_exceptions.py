"""spaCy English tokenizer exceptions: strings that split into fixed pieces (contractions, abbreviations,
emoticons), rebuilt from spaCy's `en` language data (the words module applies them)."""

from __future__ import annotations

import functools


def case_variants(word: str) -> list[str]:
    return [word, word[0].upper() + word[1:]] if word[0].islower() else [word]


@functools.cache
def special_cases() -> dict[str, tuple[str, ...]]:
    """Exceptions: string -> the pieces it splits into (pieces concatenate back to the string)."""
    exc: dict[str, tuple[str, ...]] = {}

    def add(pieces: tuple[str, ...], no_apostrophe: bool = True) -> None:
        # every contraction in lower/Title case, with ' or ’ and (mostly) also written without apostrophe
        for apo in ("'", "’"):
            ps = tuple(p.replace("'", apo) for p in pieces)
            for first in case_variants(ps[0]):
                exc[first + "".join(ps[1:])] = (first, *ps[1:])
        if no_apostrophe:
            ps = tuple(p.replace("'", "") for p in pieces)
            for first in case_variants(ps[0]):
                exc[first + "".join(ps[1:])] = (first, *ps[1:])

    # ambiguous without apostrophe ("ill", "well", "shed", "its", "were", "lets", ...) -> only the ' forms
    ambiguous = {"ill", "hell", "shell", "shed", "well"}
    for pron in ["i", "you", "he", "she", "it", "we", "they"]:
        for tail in [("'ll",), ("'ll", "'ve"), ("'d",), ("'d", "'ve")]:
            add((pron, *tail), no_apostrophe=len(tail) > 1 or (pron + tail[0][1:]) not in ambiguous)
    add(("i", "'m")), add(("i", "'m", "a"))
    for pron in ["i", "you", "we", "they"]:
        add((pron, "'ve"))
    for pron in ["you", "we", "they"]:
        add((pron, "'re"), no_apostrophe=pron != "we")  # "were" is a word
    for pron in ["he", "she", "it"]:
        add((pron, "'s"), no_apostrophe=pron != "it")
    wh_tails = {
        "'s": ["who", "what", "when", "where", "why", "how", "there", "that", "this"],
        "'ll": ["who", "what", "when", "where", "why", "how", "there", "that", "this", "these", "those"],
        "'re": ["who", "what", "when", "where", "why", "how", "there", "these", "those"],
        "'ve": ["who", "what", "when", "where", "why", "how", "there", "these", "those"],
        "'d": ["who", "what", "when", "where", "why", "how", "there", "that", "this", "these", "those"],
    }
    for tail, words in wh_tails.items():
        for w in words:
            add((w, tail), no_apostrophe=w + tail[1:] != "whore")
            if tail in ("'ll", "'d"):
                add((w, tail, "'ve"))
    # Verb + n't: pieces are the verb stem as spaCy splits it ("ca" + "n't", "wo" + "n't").
    stems = ["ca", "could", "do", "does", "did", "had", "may", "might", "must", "need", "ought", "sha",
             "should", "wo", "would"]  # fmt: skip
    for stem in stems:
        add((stem, "n't")), add((stem, "n't", "'ve"))
    for stem in ["ai", "are", "is", "was", "were", "have", "has", "dare"]:
        add((stem, "n't"))
    for verb in ["could", "might", "must", "should", "would"]:
        add((verb, "'ve"))
    add(("not", "'ve"))
    exc["y'all"], exc["y’all"], exc["yall"] = ("y'", "all"), ("y’", "all"), ("y", "all")  # lower case only
    for pieces in [("let", "'s"), ("c'm", "on"), ("how", "'d", "'y")]:
        add(pieces, no_apostrophe=False)
    for pieces in [("can", "not"), ("gon", "na"), ("got", "ta")]:
        add(pieces, no_apostrophe=False)
    for h in range(1, 13):
        for suffix in ["a.m.", "am", "p.m.", "pm"]:
            exc[f"{h}{suffix}"] = (str(h), suffix)

    # fmt: off
    single = [
        " ", "\t", "\\t", "\n", "\\n", "—", "\u00a0", "'", '\\")', "<space>", "''", "C++", "’", "’’",
        "and/or", "w/o", "'em", "'ll", "'nuff", "'s", "'S", "‘s", "‘S", "'re", "'d", "'bout", "em", "ll",
        "nuff",
        # months, US states and common abbreviations with a final period
        "Jan.", "Feb.", "Mar.", "Apr.", "Jun.", "Jul.", "Aug.", "Sep.", "Sept.", "Oct.", "Nov.", "Dec.",
        "Ak.", "Ala.", "Ariz.", "Ark.", "Calif.", "Colo.", "Conn.", "Del.", "Fla.", "Ga.", "Ia.", "Id.",
        "Ill.", "Ind.", "Kan.", "Kans.", "Ky.", "La.", "Mass.", "Mich.", "Minn.", "Miss.", "N.C.", "N.D.",
        "N.H.", "N.J.", "N.M.", "N.Y.", "Neb.", "Nebr.", "Nev.", "Okla.", "Ore.", "Pa.", "S.C.", "Tenn.",
        "Va.", "Wash.", "Wis.", "Mt.", "a.m.", "Adm.", "Bros.", "co.", "Co.", "Corp.", "D.C.", "Dr.",
        "e.g.", "E.g.", "E.G.", "Gen.", "Gov.", "i.e.", "I.e.", "I.E.", "Inc.", "Jr.", "Ltd.", "Md.",
        "Messrs.", "Mo.", "Mont.", "Mr.", "Mrs.", "Ms.", "p.m.", "Ph.D.", "Prof.", "Rep.", "Rev.", "Sen.",
        "St.", "vs.", "v.s.",
        # emoticons
        ":)", ":-)", ":))", ":-))", ":)))", ":-)))", ":(", ":-(", ":((", ":-((", ":(((", ":-(((", ":D",
        ":-D", ";)", ";-)", ";D", ";-D", ":P", ":p", ":-P", ":-p", ":/", ":-/", ":|", ":-|", ":o", ":O",
        ":-o", ":-O", ":0", ":-0", ":3", ":-3", ":*", ":-*", ":x", ":X", ":-x", ":-X", ":]", ":-]", ":}",
        ":-}", ":>", ":->", ":'(", ":'-(", ":')", ":'-)", ":’(", ":’-(", ":’)", ":’-)", ":1", ":()", ":o)",
        "(:", "(-:", "):", ")-:", "(;", "(-;", "(=", "(o:", "=)", "=(", "=]", "=[", "=|", "=/", "=D", "=3",
        "[:", "[-:", "[=", "]=", "8)", "8-)", "8D", "8-D", "(-8", "<3", "<33", "<333", "</3", ">:(", ">:o",
        "xD", "XD", "xDD", "XDD", "^_^", "^__^", "^___^", "-_-", "-__-", "o.O", "O.o", "0.o", "o.0", "O.O",
        "o.o", "0.0", "o_O", "O_o", "o_0", "0_o", "O_O", "o_o", "0_0", "V.V", "v.v", "V_V", "v_v", "._.",
        ";_;", "@_@", "<.<", ">.>", ">.<", "(^_^)", "(-_-)", "(._.)", "(*_*)", "(>_<)", "(¬_¬)", "(ಠ_ಠ)",
        "ಠ_ಠ", "ಠ︵ಠ", "¯\\(ツ)/¯", "(╯°□°）╯︵┻━┻", "><(((*>",
    ]
    # fmt: on
    single += [c + "." for c in "abcdefghijklmnopqrstuvwxyzäöü"]
    # dropped-g words, with and without the apostrophe, lower and Title case
    for w in ["doin", "goin", "nothin", "nuthin", "ol", "somethin", "lovin", "havin"]:
        single += [v + tail for v in case_variants(w) for tail in ("", "'")]
    # clipped words: the apostrophe comes first ('cause), or inside (ma'am, o'clock)
    single += [v for w in ["cause", "cos", "coz", "cuz"] for v in ("'" + w, "'" + w.title())]
    single += ["ma'am", "Ma'am", "o'clock", "O'clock"]
    single += [x.replace("'", "’") for x in single if "'" in x and not x.startswith(":")]
    for x in single:
        exc[x] = (x,)
    exc.update({f"°{u}.": ("°", u, ".") for u in "cfkCFK"})
    return exc
