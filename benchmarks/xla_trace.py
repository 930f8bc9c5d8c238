"""Where a compiled JAX computation spends its time, by source line: a `jax.profiler` trace of a few calls, each
XLA thunk's time attributed to the innermost `relik_jax` frame of the HLO instruction it runs (from the compiled
module's stack-frame tables), backward ops marked "bwd".

    rows = profile_by_source(lambda: jax.block_until_ready(step(batch)), compiled_hlo_text, calls=3)

Thunk times are wall times of the XLA runtime's work items: on a multi-core CPU they overlap, so the rows give
proportions, not a sum equal to the step's wall time.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import re
import tempfile
from collections.abc import Callable

import jax


def _frames(hlo: str) -> dict[int, str]:
    """stack_frame_id -> "file:line function" of its innermost relik_jax frame (else its own frame)."""
    tables: dict[str, dict[int, str]] = {"FileNames": {}, "FunctionNames": {}, "FileLocations": {}, "StackFrames": {}}
    section = None
    for line in hlo.splitlines():
        s = line.strip()
        if s in tables:
            section = s
            continue
        if not s:
            section = None
            continue
        if section in ("FileNames", "FunctionNames"):
            i, name = s.split(" ", 1)
            tables[section][int(i)] = name.strip('"')
        elif section in ("FileLocations", "StackFrames"):
            i, rest = s.split(" ", 1)
            tables[section][int(i)] = rest
    files, funcs = tables["FileNames"], tables["FunctionNames"]
    locs = {}
    for i, rest in tables["FileLocations"].items():
        m = re.match(r"\{file_name_id=(\d+) function_name_id=(\d+) line=(\d+)", rest)
        locs[i] = (files[int(m[1])], funcs[int(m[2])], int(m[3]))
    parents = {}
    for i, rest in tables["StackFrames"].items():
        m = re.match(r"\{file_location_id=(\d+) parent_frame_id=(\d+)", rest)
        parents[i] = (int(m[1]), int(m[2]))

    def where(fid: int) -> str:
        chain = []
        while fid in parents and len(chain) < 64:
            loc, parent = parents[fid]
            chain.append(locs[loc])
            if parent == fid:
                break
            fid = parent
        for f, fn, ln in chain:
            if "relik_jax" in f:
                return f"{f.split('relik_jax/')[-1]}:{ln} {fn}"
        return f"{chain[0][0].split('/')[-1]}:{chain[0][2]}" if chain else "?"

    return {i: where(i) for i in parents}


def profile_by_source(call: Callable[[], object], hlo: str, calls: int = 3) -> list[tuple[str, float, float]]:
    """(source, ms per call, share) rows, largest first, for `calls` runs of `call` (which must block)."""
    where = _frames(hlo)
    owner = {}
    for line in hlo.splitlines():
        s = line.strip().removeprefix("ROOT ").strip()
        if s.startswith("%"):
            name = s.split("=")[0].strip().lstrip("%")
            frame = re.search(r"stack_frame_id=(\d+)", s)
            op = re.search(r'op_name="([^"]*)"', s)
            bwd = "bwd " if op and "transpose(" in op[1] else ""
            owner.setdefault(name, bwd + (where.get(int(frame[1]), "?") if frame else "(no source: copies)"))
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            for _ in range(calls):
                call()
        trace = json.load(gzip.open(glob.glob(f"{d}/**/*.trace.json.gz", recursive=True)[0]))
    total: collections.Counter = collections.Counter()
    for e in trace["traceEvents"]:
        if e.get("ph") == "X" and e.get("name") in owner:
            total[owner[e["name"]]] += e["dur"]
    all_us = sum(total.values()) or 1.0
    return [(k, v / calls / 1e3, v / all_us) for k, v in total.most_common()]
