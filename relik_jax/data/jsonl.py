"""JSON Lines: one object per line (windowized reader data, predictions, DPR rows)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from relik_jax.text.windows import Window


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """One JSON object per line (e.g. the reference's windowized reader data)."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not a JSON object per line ({e})") from e


def read_windows(path: str | Path) -> Iterator[Window]:
    """Windowized reader data (§4.3 JSONL, ours or the reference's) as `relik_jax.text.windows.Window`s, with their
    candidates and gold labels; other keys (e.g. candidate scores) are kept in `Window.extra`."""
    for row in read_jsonl(path):
        yield Window.from_dict(row)


def write_jsonl(rows: Iterable[dict], path: str | Path) -> int:
    """Write dicts one per line (UTF-8, no ASCII escaping); returns the number of lines."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n
