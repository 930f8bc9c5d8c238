"""Regenerate tests/data/spacy_golden.jsonl: spaCy's English tokenization of hand-written sentences.

spaCy is not a project dependency; use a private venv:
    python3 -m venv /tmp/spacy-venv && /tmp/spacy-venv/bin/pip install "spacy>=3.7,<3.8" click
    /tmp/spacy-venv/bin/python tests/data/make_spacy_golden.py
Each line: {"text", "words": [[text, start, end], ...]} from `spacy.blank("en")` (the rule-based tokenizer the
reference uses through en_core_web_sm). The sentences are written for this test, not taken from any dataset.
"""

import json
from pathlib import Path

import spacy

SENTENCES = [
    "Hello, world! This is a simple sentence.",
    "I don't think they'll come, but we'd better ask.",
    "She can't go; he won't stay. You shouldn't've done that!",
    "It's Mr. Smith's dog, isn't it?",
    "Dr. Jones met Mrs. Brown and Ms. White at St. Mary's on Jan. 5th.",
    "The U.S. economy grew 3.5% in Q2, e.g. faster than the U.K.'s.",
    "Prices rose from $1,000.50 to US$2,345 (about €2,100).",
    "Visit https://www.example.com/path?q=1&r=2 or www.example.org today.",
    "Email me at john.doe@example.com, please.",
    "A well-known state-of-the-art model scored 1-0 against the 2-1 favourite.",
    "The temperature was 25°C and 77 °F at 5pm, or 10 a.m. tomorrow.",
    "He ran 10km in 45min and lifted 100kg.",
    "\"Quoted text,\" she said. 'Single quotes' too.",
    "Wait... what?! Really?!",
    "(Parentheses) [brackets] {braces} <angles>",
    "Multiple   spaces and\ttabs\nand newlines\n\nhere.",
    "  Leading and trailing spaces  ",
    "Emoticons :) and :-( and <3 are kept.",
    "Numbers like 3.14159, 1,234,567 and -42 or +7.",
    "Ph.D. students at M.I.T. and N.Y.U. in N.Y. and Washington, D.C.",
    "Non-ASCII: Zürich, São Paulo, Kraków and Ærøskøbing.",
    "Русский текст, с запятыми и точками.",
    "中文文本，包含标点。日本語もあります。",
    "Greek: Αθήνα, Θεσσαλονίκη.",
    "Arabic: القاهرة، مصر.",
    "Hyphenated-words and en–dashes and em—dashes.",
    "rock'n'roll and O'Neill and y'all and c'mon.",
    "I'm gonna do it 'cause I gotta, ain't it?",
    "The score was 2:1 and the ratio 3/4, a/b testing.",
    "Let's go! Let’s go with curly apostrophes: don’t, can’t, it’s.",
    "Apple Inc. and Microsoft Corp. reported earnings; Ltd. firms too.",
    "Version 2.0.1 was released on 2024-01-15 at 10:30.",
    'He said "no." Then left.',
    "What's up? Who's there? Where'd you go?",
    "#hashtag @mention and_underscores *stars* & ampersands.",
    "C++ and C# are languages; so is F#.",
    "The file is named report_final.pdf, not report.docx.",
    "U.S.-based companies and NATO.",
    "Mixed CASE WORDS LIKE DON'T AND CAN'T.",
    "Ellipsis…here and there….",
    "End with abbreviation etc.",
    "A sentence ending in a number 42.",
    "Tel: +1-800-555-0199 or (555) 123-4567.",
    "x=1, y=2; z>3 and w<4.",
    "They're here, we're there, you've seen it, I've not.",
    "Football: Manchester United 3 Liverpool 1 ( Rooney 12 , 45 ) .",
    "SOCCER - JAPAN GET LUCKY WIN , CHINA IN SURPRISE DEFEAT .",
    "The 1990s and '90s and the 90's.",
    "o'clock, ma'am, lovin' it, nothin' doin'.",
    "St.Louis and a.B and end.Start and x:)",
    "Control\u0001chars\u0000and\u200bzero-width.",
    "!!!???...",
]


def main() -> None:
    nlp = spacy.blank("en")
    out = Path(__file__).with_name("spacy_golden.jsonl")
    with open(out, "w", encoding="utf-8") as f:
        for s in SENTENCES:
            words = [[t.text, t.idx, t.idx + len(t.text)] for t in nlp(s)]
            f.write(json.dumps({"text": s, "words": words}, ensure_ascii=False) + "\n")
    print(f"wrote {len(SENTENCES)} sentences to {out} (spaCy {spacy.__version__})")


if __name__ == "__main__":
    main()
