"""Rule-based English word tokenizer that reproduces spaCy's English tokenizer without spaCy.

The reference splits documents into words with spaCy `en_core_web_sm`, of which only the rule-based
tokenizer matters (`spacy.blank("en")` tokenizes identically). This module re-implements that algorithm,
so no model and no spaCy install is needed:

1. the text is cut at whitespace; one plain space after a chunk belongs to the chunk, any other whitespace
   run becomes a word of its own (spaCy keeps "\\n", "\\t", double spaces as tokens);
2. each chunk is looked up in the special cases (contractions "don't" -> "do" "n't", abbreviations "Mr.",
   "e.g.", emoticons); otherwise prefixes (opening punctuation, quotes, currency) and suffixes (closing
   punctuation, "'s", units after numbers, a final ".") are peeled off repeatedly, URLs are kept whole, and
   the rest is split at infixes (hyphens and "/" between letters, "...", "," between letters, "." between
   a lowercase and an uppercase letter);
3. runs of words that spell a special case containing punctuation are merged ("a" "." -> "a.").

Agreement with spaCy 3.7 `spacy.blank("en")` is measured by the study benchmarks/studies/words_vs_spacy/:
identical words and offsets on 100% of AIDA, CoNLL04, NYT and REBEL-sample documents and of 60,000 adversarial strings
(punctuation, spaCy's 1,347 exception strings, letters of many scripts). tests/text/test_words.py checks a
golden file written by spaCy (tests/fixtures/make_spacy_golden.py). Offsets are Python `str` indices.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from relik_jax.text.word_exceptions import special_cases

__all__ = ["Word", "WordTokenizer", "tokenize", "tokenize_columns", "tokenize_split_words", "word_columns"]


class Word(NamedTuple):
    """One word: `text == document[start:end]`, `index` = position in the document's word list (a NamedTuple:
    documents have many words, and tuples are the cheapest immutable records to build)."""

    text: str
    start: int
    end: int
    index: int


# ---------------------------------------------------------------------------------------- character classes
def _ranges(chars: list[int]) -> str:
    """Compact regex character-class body for a sorted list of code points."""
    out: list[str] = []
    i = 0
    while i < len(chars):
        j = i
        while j + 1 < len(chars) and chars[j + 1] == chars[j] + 1:
            j += 1
        lo, hi = chars[i], chars[j]
        out.append(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}")
        i = j + 1
    return "".join(out)


# Scripts without letter case that spaCy counts as letters (both "lower" and "upper" case), as Unicode block
# ranges: every code point in them counts, marks and digits included. Scripts not listed here and not
# Latin/Greek/Cyrillic (Thai, Georgian, Armenian, Gujarati, ...) are not letters for spaCy's rules.
_UNCASED_BLOCKS = [
    (0x0591, 0x05F4),  # Hebrew
    (0x0620, 0x064A), (0x066E, 0x06D5), (0x06E5, 0x06FF),  # Arabic letters
    (0x0750, 0x077F), (0x08A0, 0x08BD),  # Arabic Supplement, Arabic Extended-A
    (0x0900, 0x09FF),  # Devanagari, Bengali
    (0x0B80, 0x0CFF),  # Tamil, Telugu, Kannada
    (0x0D80, 0x0DFF),  # Sinhala
    (0x1100, 0x137F),  # Hangul Jamo, Ethiopic
    (0x2E80, 0x2FDF), (0x2FF0, 0x30FF), (0x31C0, 0x31EF),  # CJK radicals, Hiragana, Katakana, ...
    (0x3200, 0x4DBF), (0x4E00, 0x9FFF),  # enclosed CJK, CJK compatibility, CJK ideographs (+ extension A)
    (0xAC00, 0xD7AF), (0xF900, 0xFAFF),  # Hangul syllables, CJK compatibility ideographs
    (0xFB1D, 0xFBB1), (0xFBD3, 0xFD3D), (0xFD50, 0xFDC7), (0xFDF0, 0xFDFB),  # presentation forms
    (0xFE30, 0xFE4F), (0xFE70, 0xFEFC),  # CJK compatibility forms, Arabic presentation forms-B
    (0x1EE00, 0x1EEBB), (0x1F200, 0x1F2FF),  # Arabic mathematical letters, enclosed ideographic supplement
    (0x20000, 0x2A6DF), (0x2A700, 0x2EBEF), (0x2F800, 0x2FA1F),  # CJK extensions B-F, compatibility
]  # fmt: skip
_CASED_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC", "FULLWIDTH LATIN")


@functools.cache
def _char_classes() -> dict[str, str]:
    # spaCy's letter classes: cased Latin, Greek and Cyrillic letters, plus the uncased blocks above, which
    # count as both lower and upper case (so "." between "a" and a CJK character is an infix, for example).
    lower, upper, alpha, icons = [], [], [], []
    uncased = {cp for lo, hi in _UNCASED_BLOCKS for cp in range(lo, hi + 1)}
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        cat = unicodedata.category(c)
        if cat == "So":
            icons.append(cp)
        if cp in uncased:
            alpha.append(cp)
            lower.append(cp)
            upper.append(cp)
            continue
        if not c.isalpha() or not unicodedata.name(c, "").startswith(_CASED_SCRIPTS):
            continue
        alpha.append(cp)
        if cat == "Ll":
            lower.append(cp)
        elif cat in ("Lu", "Lt"):
            upper.append(cp)
    return {
        "lower": _ranges(lower),
        "upper": _ranges(upper),
        "alpha": _ranges(alpha),
        "icons": _ranges(icons),
    }


_PUNCT = list("…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪") + ["……"]
_QUOTES = list("'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉〈〉⟦⟧")
_CURRENCY = ["$", "£", "€", "¥", "฿", "US$", "C$", "A$"] + list("₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫€₭₮₯₰₱₲₳₴₵₶₷₸₹₺₻₼₽₾₿")
_HYPHENS = ["-", "–", "—", "--", "---", "——", "~"]
_UNITS = (
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s "
    "km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ дм дм² дм³ см см² "
    "см³ мм мм² мм³ нм кг г мг м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ "
    "тбكم كم² كم³ م م² م³ سم سم² سم³ مم مم² مم³ كم غرام جرام جم كغ ملغ كوب اكواب"
).split()


def _alt(items: list[str]) -> str:
    return "|".join(re.escape(x) for x in items)


@functools.cache
def _regexes() -> tuple[re.Pattern, re.Pattern, re.Pattern, re.Pattern]:
    cc = _char_classes()
    lo, up, al, ic = cc["lower"], cc["upper"], cc["alpha"], cc["icons"]
    quotes = "".join(re.escape(q) for q in _QUOTES)
    ellipses = [r"\.\.+", "…"]
    # Prefix alternatives are tried in this order (the first that matches wins, as in spaCy).
    prefixes = (
        ["§", "%", "=", "—", "–", r"\+(?![0-9])"]
        + [re.escape(p) for p in _PUNCT]
        + ellipses
        + [re.escape(q) for q in _QUOTES]
        + [re.escape(c) for c in _CURRENCY]
        + [f"[{ic}]"]
    )
    # Characters after which a final "." is split off (spaCy builds this class from its punctuation lists, so
    # it also contains the regex syntax characters "|", "(", "?", ":" and ")").
    before_dot = "0-9" + lo + r"%²\-\+" + re.escape("".join(_PUNCT)) + r"\|\(\?:\)" + quotes
    suffixes = (
        [re.escape(p) for p in _PUNCT]
        + ellipses
        + [re.escape(q) for q in _QUOTES]
        + [f"[{ic}]", "'s", "'S", "’s", "’S", "—", "–"]
        + [
            r"(?<=[0-9])\+",
            r"(?<=°[FfCcKk])\.",
            rf"(?<=[0-9])(?:{_alt(_CURRENCY)})",
            r"(?<=[0-9])(?:" + "|".join(re.escape(u) for u in _UNITS) + ")",
            rf"(?<=[{before_dot}])\.",
            rf"(?<=[{up}][{up}])\.",
        ]
    )
    infixes = ellipses + [
        f"[{ic}]",
        r"(?<=[0-9])[+\-\*^](?=[0-9-])",
        rf"(?<=[{lo}{quotes}])\.(?=[{up}{quotes}])",
        rf"(?<=[{al}]),(?=[{al}])",
        rf"(?<=[{al}0-9])(?:{_alt(_HYPHENS)})(?=[{al}])",
        rf"(?<=[{al}0-9])[:<>=/](?=[{al}])",
    ]
    prefix_re = re.compile("|".join("^" + p for p in prefixes))
    suffix_re = re.compile("|".join(s + "$" for s in suffixes))
    infix_re = re.compile("|".join(infixes))
    # URLs, e-mail addresses and bare domains stay whole (checked after affixes are peeled off).
    url_re = re.compile(
        r"^(?:[\w\+\-\.]{2,}://)?"
        r"(?:\S+(?::\S*)?@)?"
        r"(?:"
        r"(?!(?:10|127)(?:\.\d{1,3}){3})(?!(?:169\.254|192\.168)(?:\.\d{1,3}){2})"
        r"(?!172\.(?:1[6-9]|2\d|3[0-1])(?:\.\d{1,3}){2})"
        r"(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}"
        r"(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4]))"
        r"|"
        r"(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?[A-Za-z0-9\u00a1-\uffff]\.)+"
        rf"(?:[{lo}]{{2,63}})"
        r")"
        r"(?::\d{2,5})?(?:[/?#]\S*)?$"
    )
    return prefix_re, suffix_re, infix_re, url_re


# ------------------------------------------------------------------------------------------------ tokenizer
_CHUNKS = re.compile(r"\S+|\s+")


class WordTokenizer:
    """spaCy-compatible English word tokenizer. `tokenizer(text)` -> list of `Word`.

    `is_split_into_words=True` reproduces the reference's `Doc(words=text.split(" "))`: words are the pieces
    between single spaces (empty pieces from repeated spaces are dropped instead of raising as spaCy does).
    """

    def __init__(self) -> None:
        self._prefix, self._suffix, self._infix, self._url = _regexes()
        self._specials = special_cases()
        # Special cases that contain punctuation are also matched across the pieces that affix splitting made
        # of them ("a.B" -> "a" "." "B" -> "a." "B"); index them by their first piece.
        self._merge: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for key in self._specials:
            if self._affix_match(key):
                pieces = tuple(self._split_chunk(key, with_specials=False))
                if len(pieces) > 1:
                    self._merge.setdefault(pieces[0], []).append((pieces, key))
        self._max_pattern = max((len(p) for v in self._merge.values() for p, _ in v), default=1)
        # the same patterns by their first two pieces: a text can only match where such a pair is adjacent
        self._merge_pairs: dict[tuple[str, str], list[tuple[tuple[str, ...], str]]] = {}
        for pats in self._merge.values():
            for pieces, key in pats:
                self._merge_pairs.setdefault(pieces[:2], []).append((pieces, key))
        self._cache: dict[str, tuple[str, ...]] = {}

    def _affix_match(self, s: str) -> bool:
        return bool(self._prefix.search(s) or self._suffix.search(s) or self._infix.search(s) or " " in s)

    def _find_prefix(self, s: str) -> int:
        m = self._prefix.search(s)
        return m.end() - m.start() if m else 0

    def _find_suffix(self, s: str) -> int:
        m = self._suffix.search(s)
        return m.end() - m.start() if m else 0

    def _split_chunk(self, chunk: str, with_specials: bool = True) -> list[str]:
        """Pieces of one whitespace-free chunk (spaCy's `_tokenize`: affixes, specials, URL, infixes)."""
        specials = self._specials if with_specials else {}
        if chunk in specials:
            return list(specials[chunk])
        prefixes: list[str] = []
        suffixes: list[str] = []
        s = chunk
        last = -1
        while s and len(s) != last:
            if s in specials:
                break
            last = len(s)
            pre = self._find_prefix(s)
            if pre:
                minus_pre = s[pre:]
                if minus_pre and minus_pre in specials:
                    prefixes.append(s[:pre])
                    s = minus_pre
                    break
            suf = self._find_suffix(s[pre:])
            if suf:
                minus_suf = s[:-suf]
                if minus_suf and minus_suf in specials:
                    suffixes.append(s[-suf:])
                    s = minus_suf
                    break
            if pre and suf and pre + suf <= len(s):
                prefixes.append(s[:pre])
                suffixes.append(s[-suf:])
                s = s[pre:-suf]
            elif pre:
                prefixes.append(s[:pre])
                s = s[pre:]
            elif suf:
                suffixes.append(s[-suf:])
                s = s[:-suf]
            if s and s in specials:
                break
        out = prefixes
        if s:
            if s in specials:
                out.extend(specials[s])
            elif self._url.match(s):
                out.append(s)
            else:
                start = 0
                for m in self._infix.finditer(s):
                    if m.start() == 0:
                        continue  # an infix at the very start is not split off
                    if m.start() != start:
                        out.append(s[start : m.start()])
                    if m.start() != m.end():
                        out.append(s[m.start() : m.end()])
                    start = m.end()
                if s[start:]:
                    out.append(s[start:])
        out.extend(reversed(suffixes))
        return out

    def _pieces(self, chunk: str) -> tuple[str, ...]:
        pieces = self._cache.get(chunk)
        if pieces is None:
            pieces = tuple(self._split_chunk(chunk))
            if len(self._cache) < 200_000:
                self._cache[chunk] = pieces
        return pieces

    def _iter_raw(self, text: str) -> Iterator[tuple[str, int]]:
        """(piece, start) for every spaCy token of `text`, before the special-case merge."""
        for m in _CHUNKS.finditer(text):  # `\s` is exactly str.isspace
            start = m.start()
            chunk = m.group()
            if chunk[0].isspace():
                # one plain space after a word is that word's trailing space, not a token
                if chunk[0] == " " and start > 0:
                    chunk, start = chunk[1:], start + 1
                if chunk:
                    yield chunk, start
                continue
            for piece in self._pieces(chunk):
                yield piece, start
                start += len(piece)

    def iter_words(self, text: str) -> Iterator[Word]:
        """Generator over the words of `text` (streams: memory stays bounded for very long documents)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        raw = self._iter_raw(text)
        buf: list[tuple[str, int]] = []  # raw tokens base, base+1, ...
        base = 0
        scan = 0  # next token index at which matches are looked for
        pending: list[tuple[int, int, str]] = []  # special-case matches (start, end, key), token indices
        exhausted = False
        index = 0
        while True:
            while not exhausted and base + len(buf) < scan + self._max_pattern:
                nxt = next(raw, None)
                if nxt is None:
                    exhausted = True
                else:
                    buf.append(nxt)
            end = base + len(buf)
            if scan < end:
                for pieces, key in self._merge.get(buf[scan - base][0], ()):
                    k = len(pieces)
                    if scan + k <= end and all(buf[scan - base + j][0] == pieces[j] for j in range(1, k)):
                        pending.append((scan, scan + k, key))
                scan += 1
                # matches found later start at >= scan: resolve once no pending match reaches past it
                if any(e > scan for _, e, _ in pending):
                    continue
            if pending:
                for word in self._resolve(buf[: scan - base], base, pending, index):
                    yield word
                    index += 1
            else:  # fast path: nothing to merge
                for piece, start in buf[: scan - base]:
                    yield Word(piece, start, start + len(piece), index)
                    index += 1
            del buf[: scan - base]
            base = scan
            pending = []
            if scan >= end and exhausted:
                return

    def _resolve(
        self, tokens: list[tuple[str, int]], base: int, matches: list[tuple[int, int, str]], index: int
    ) -> Iterator[Word]:
        """Apply overlapping special-case matches as spaCy does: longest first, then leftmost; a match is
        dropped when its first or last token was covered by an earlier considered match (accepted or not);
        an accepted match spanning whitespace keeps its tokens (its text is not the special-case string)."""
        accepted: dict[int, tuple[int, str]] = {}
        seen: set[int] = set()
        for s, e, key in sorted(matches, key=lambda m: (m[0] - m[1], m[0])):
            if s not in seen and e - 1 not in seen:
                accepted[s] = (e, key)
            seen.update(range(s, e))
        i = base
        stop = base + len(tokens)
        while i < stop:
            piece, start = tokens[i - base]
            if i in accepted:
                e, key = accepted[i]
                last, last_start = tokens[e - 1 - base]
                if last_start + len(last) - start == len(key):
                    pos = start
                    for sub in self._specials[key]:
                        yield Word(sub, pos, pos + len(sub), index)
                        index += 1
                        pos += len(sub)
                    i = e
                    continue
                for j in range(i, e):
                    piece, start = tokens[j - base]
                    yield Word(piece, start, start + len(piece), index)
                    index += 1
                i = e
                continue
            yield Word(piece, start, start + len(piece), index)
            index += 1
            i += 1

    def __call__(self, text: str, is_split_into_words: bool = False) -> list[Word]:
        if is_split_into_words:
            return tokenize_split_words(text)
        pieces, starts, ends = self.columns(text)
        # tuple.__new__ over zip: C-level construction (a NamedTuple's own __new__ is Python code)
        return list(map(_new_word, zip(pieces, starts, ends, range(len(pieces)), strict=True)))

    def columns(self, text: str, is_split_into_words: bool = False) -> tuple[list[str], list[int], list[int]]:
        """The words as three lists (texts, char starts, char ends): `__call__` without building `Word`s."""
        if is_split_into_words:
            return word_columns(tokenize_split_words(text))
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        # The whole-document path of `iter_words`, same result: all special-case matches at once, resolved in one
        # call (matches that `iter_words` resolves in separate blocks never overlap, so they cannot interact).
        pieces, starts = self._raw_pieces(text)
        n = len(pieces)
        # patterns whose first two pieces are adjacent somewhere in the text (most texts have none)
        pairs = self._merge_pairs.keys() & set(zip(pieces, pieces[1:]))  # noqa: B905 - pairs of neighbours
        if pairs:
            matches = []
            for pair in pairs:
                for i in itertools.compress(range(n), map(pair[0].__eq__, pieces)):  # its first piece's places
                    if i + 1 < n and pieces[i + 1] == pair[1]:
                        matches.extend((i, i + len(ps), key) for ps, key in self._merge_pairs[pair]
                                       if i + len(ps) <= n and all(pieces[i + j] == ps[j] for j in range(2, len(ps))))
            matches.sort()  # position order, as a scan would find them
            if matches:
                return word_columns(list(self._resolve(list(zip(pieces, starts, strict=True)), 0, matches, 0)))
        return pieces, starts, list(map(operator.add, starts, map(len, pieces)))

    def _raw_pieces(self, text: str) -> tuple[list[str], list[int]]:
        """`_iter_raw` as two lists, pieces and their starts (the whole-document path, no generator)."""
        chunks = text.split(" ")
        if chunks != text.split():  # whitespace other than single spaces between chunks: the general path
            raw = list(self._iter_raw(text))
            return [p for p, _ in raw], [s for _, s in raw]
        # chunk i starts after chunks 0..i-1 and one space each
        starts = list(map(operator.add, itertools.accumulate(map(len, chunks[:-1]), initial=0), itertools.count()))
        cache = self._cache
        split = [cache.get(c) or self._pieces(c) for c in chunks]
        if sum(map(len, split)) == len(chunks):  # every chunk is one piece
            return chunks, starts
        pieces: list[str] = []
        out_starts: list[int] = []
        for chunk, start, ps in zip(chunks, starts, split, strict=True):
            if len(ps) == 1:
                pieces.append(chunk)
                out_starts.append(start)
                continue
            for piece in ps:
                pieces.append(piece)
                out_starts.append(start)
                start += len(piece)
        return pieces, out_starts


_new_word = functools.partial(tuple.__new__, Word)


def word_columns(words: Sequence[Word]) -> tuple[list[str], list[int], list[int]]:
    """`Word`s as three lists: texts, char starts, char ends."""
    return list(map(_TEXT, words)), list(map(_START, words)), list(map(_END, words))


_TEXT, _START, _END = operator.attrgetter("text"), operator.attrgetter("start"), operator.attrgetter("end")


def tokenize_split_words(text: str | list[str]) -> list[Word]:
    """Words separated by single spaces (the reference's `is_split_into_words=True`).

    A list of words is joined with single spaces first (offsets refer to that joined string)."""
    if isinstance(text, list):
        text = " ".join(text)
    if not isinstance(text, str):
        raise TypeError(f"text must be str or list[str], got {type(text).__name__}")
    words: list[Word] = []
    pos = 0
    for piece in text.split(" "):
        if piece:
            words.append(Word(piece, pos, pos + len(piece), len(words)))
        pos += len(piece) + 1
    return words


@functools.cache
def _default_tokenizer() -> WordTokenizer:
    return WordTokenizer()


def tokenize(text: str, is_split_into_words: bool = False) -> list[Word]:
    """Words of `text` as spaCy's English tokenizer would produce them (shared, lazily built tokenizer)."""
    return _default_tokenizer()(text, is_split_into_words=is_split_into_words)


def tokenize_columns(text: str, is_split_into_words: bool = False) -> tuple[list[str], list[int], list[int]]:
    """`tokenize` as three lists: word texts, char starts, char ends (no `Word` records: the pipeline's path)."""
    return _default_tokenizer().columns(text, is_split_into_words=is_split_into_words)
