"""Static padding buckets: every jitted program (reader stages, retriever encoder, index search) sees only shapes
from a small fixed set. All bucketing of the package lives here.

Retriever and index: `length_bucket` (sequence lengths; beyond the last bucket, multiples of it), `batch_bucket`
(rows: powers of two from 8, capped by the batch size), `pow2_at_least` (query counts).

Reader (`Buckets`):

Dimensions and how each is bucketed (all lists are ascending; a value above the last entry goes to the next power
of two, so nothing is ever dropped, and the number of programs stays bounded because every dimension is bounded
by the longest sequence):

- L   sequence length: `seq_lens`; rows are grouped by their L bucket.
- B   rows per batch: at most `token_budget // L` (capped by `max_rows`, rounded down to a power of two); a
      smaller last batch of a group is padded to the next power of two. With `row_multiple` = d (the devices a
      data-parallel batch is split over, engine/sharding.py) every B is then rounded up to a multiple of d.
- Lt  text positions (CLS + text sub-tokens) that can hold a start or an end: `text_lens`, capped at L.
- S   predicted starts per row, M mentions per row, C / T / R symbol columns per row: `counts`.

`plan_batches` turns row lengths into batches; `ShapeLog` records the distinct program shapes a run used, and
`program_bound` is the worst case the configuration allows (what the compile-count test asserts against).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


def pow2_at_least(n: int, floor: int = 1) -> int:
    """The smallest power of two >= max(n, floor)."""
    return max(floor, 1 << max(0, (max(1, n) - 1).bit_length()))


def length_bucket(n: int, buckets: Sequence[int]) -> int:
    """Smallest bucket >= n; beyond the last one, the next multiple of it (retriever sequence lengths)."""
    for b in buckets:
        if n <= b:
            return b
    return -(-n // buckets[-1]) * buckets[-1]


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def batch_bucket(n: int, batch_size: int, multiple: int = 1) -> int:
    """Rows of a padded batch of n: powers of two from 8, at most `batch_size`; then a multiple of `multiple`."""
    return round_up(min(batch_size, pow2_at_least(n, 8)), multiple)


@dataclasses.dataclass(frozen=True)
class Buckets:
    # steps of 64 up to 512, then 128: NYT-like rows of 192-380 tokens padded to 256 / 512 cost 2.2x their real
    # attention work; with these steps 1.2x (the reference pads each greedy batch to its longest row)
    seq_lens: tuple[int, ...] = (64, 128, 192, 256, 320, 384, 448, 512, 640, 768, 896, 1024)
    text_lens: tuple[int, ...] = (32, 64, 128, 256, 512)
    counts: tuple[int, ...] = (8, 16, 32, 64, 128)
    token_budget: int = 8192
    max_rows: int = 32
    row_multiple: int = 1  # data-parallel devices: every padded batch has a multiple of this many rows
    # A group's last, partial batch of n rows is padded to the next power of two only while the padding stays at
    # most this share of it; beyond, a full power-of-two batch is split off and the rest planned again (0.5: always
    # pad; 0: never, at most log2(max_rows) + 1 batches). On CPU padded rows cost as much as real ones.
    row_waste: float = 0.5

    @classmethod
    def for_platform(cls, platform: str) -> Buckets:
        """Default buckets for a JAX platform ("cpu", "gpu", "tpu"): on an accelerator up to 128 short rows share a
        batch (3 dispatches + 2 read-backs per batch: 4x fewer of them per window; NYT host cost 0.27 -> 0.20
        ms/window, benchmarks/host_overhead.py); on a CPU 32, since there the device is the same cores and bigger
        batches pad the heads more (NYT on the CPU device 25 % slower with 128), and partial batches are split
        rather than padded by more than an eighth (20 full-depth NYT rows: 8,896 -> 6,272 encoded tokens)."""
        return cls(row_waste=0.125) if platform == "cpu" else cls(max_rows=128)

    def __post_init__(self) -> None:
        if self.row_multiple < 1:
            raise ValueError(f"Buckets.row_multiple must be >= 1, got {self.row_multiple}")
        if not 0 <= self.row_waste <= 0.5:
            raise ValueError(f"Buckets.row_waste must be in [0, 0.5], got {self.row_waste}")
        for name in ("seq_lens", "text_lens", "counts"):
            values = getattr(self, name)
            if not values or list(values) != sorted(set(values)) or values[0] < 1:
                raise ValueError(f"Buckets.{name} must be strictly ascending positive ints, got {values}")

    @staticmethod
    def pick(n: int, sizes: Sequence[int]) -> int:
        """Smallest bucket >= n; beyond the last one, the next power of two (never truncates)."""
        for s in sizes:
            if n <= s:
                return s
        return pow2_at_least(n)

    def seq_len(self, n: int) -> int:
        return self.pick(n, self.seq_lens)

    def text_len(self, n: int, seq_len: int) -> int:
        return min(self.pick(n, self.text_lens), seq_len)

    def count(self, n: int) -> int:
        return self.pick(max(1, n), self.counts)

    def rows(self, seq_len: int) -> int:
        r = max(1, min(self.max_rows, self.token_budget // seq_len))
        return round_up(1 << (r.bit_length() - 1), self.row_multiple)

    def batch_rows(self, n: int, seq_len: int) -> int:
        """Padded rows of a batch of n <= rows(seq_len) rows: the next power of two, then a multiple of
        `row_multiple`."""
        return min(self.rows(seq_len), round_up(pow2_at_least(n), self.row_multiple))

    @staticmethod
    def reachable(sizes: Sequence[int], limit: int) -> list[int]:
        """Every value `pick(n, sizes)` can return for 1 <= n <= limit."""
        out = []
        for s in sizes:
            out.append(s)
            if s >= limit:
                return out
        p = pow2_at_least(sizes[-1] + 1)
        while True:
            out.append(p)
            if p >= limit:
                return out
            p *= 2

    def program_bound(self, max_len: int, triplet: bool) -> dict[str, int]:
        """Worst-case number of compiled programs per stage for rows up to `max_len` tokens."""
        ls = self.reachable(self.seq_lens, max_len)
        a = b = c = 0
        for length in ls:
            n_b = len({self.batch_rows(1 << i, length) for i in range(self.rows(length).bit_length())})
            a += n_b
            lts = sorted({min(t, length) for t in self.reachable(self.text_lens, length)})
            for lt in lts:
                ss = self.reachable(self.counts, lt)
                b += n_b * len(ss)
                ms = self.reachable(self.counts, lt * lt)
                cs = self.reachable(self.counts, length)
                c += n_b * len(ss) * len(ms) * (len(cs) ** 2 if triplet else len(cs))
        # EL with softmax ends runs ends + linking as one program: at most `ends` x symbol buckets of them
        fused = b * len(self.reachable(self.counts, max_len))
        return {"encode": a, "ends": b, "heads": c, "ends+heads": fused, "total": a + b + c + fused}


@dataclasses.dataclass
class Batch:
    seq_len: int
    rows: int  # padded batch size
    indices: list[int]  # row indices into the caller's list (len <= rows)


def plan_batches(lengths: Sequence[int], buckets: Buckets, *, sort: bool = True, order: Sequence[int] | None = None,
                 full_rows: bool = False) -> list[Batch]:
    """Group rows by L bucket (longest rows share batches; order restored by the caller via `indices`).

    `order` visits rows in that order instead (e.g. shuffled for training); `full_rows` pads every batch to the
    bucket's row count (one batch size per L: fewer compilations), else the last one to the next power of two."""
    if order is None:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i]) if sort else range(len(lengths))
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(buckets.seq_len(lengths[int(i)]), []).append(int(i))
    out = []
    for length in sorted(groups):
        idx = groups[length]
        n = buckets.rows(length)
        for k in range(0, len(idx), n):
            chunk = idx[k: k + n]
            if full_rows:
                out.append(Batch(length, n, chunk))
                continue
            while chunk:
                rows = buckets.batch_rows(len(chunk), length)
                if rows - len(chunk) <= buckets.row_waste * rows or buckets.row_multiple > 1:
                    out.append(Batch(length, rows, chunk))
                    break
                full = 1 << (len(chunk).bit_length() - 1)  # the largest power of two below len(chunk)
                out.append(Batch(length, full, chunk[:full]))
                chunk = chunk[full:]
    return out


class ShapeLog:
    """Distinct static shapes seen per stage (each one = one compiled program)."""

    def __init__(self) -> None:
        self.seen: dict[str, set[tuple]] = {}

    def add(self, stage: str, key: tuple) -> None:
        self.seen.setdefault(stage, set()).add(key)

    def counts(self) -> dict[str, int]:
        out = {k: len(v) for k, v in sorted(self.seen.items())}
        out["total"] = sum(out.values())
        return out
