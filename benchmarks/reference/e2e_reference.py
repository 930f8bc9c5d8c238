"""Reference side of `benchmarks/e2e.py`: relik 1.0.7's `Relik` timed end to end, text in, spans / triplets out.

Runs ONLY under the reference venv; never imports relik_jax (texts and candidates come as JSON):

    <venv-reference>/bin/python benchmarks/reference/e2e_reference.py JOB.json

JOB.json (written by e2e.py): `readers` {name: spec} (see e2e_readers.py), `workloads` [{name, reader, task,
window_size, window_stride, top_k, texts, candidates}], `threads`. The process builds (or finds cached) every
reader, answers one JSON line `{"ready": ..., "versions", "threads", "readers"}`, then serves commands, one JSON
line each on stdin, one JSON line answer each on stdout (everything else it prints goes to stderr):
- `{"run": NAME}`: one call of the workload's pipeline, `relik(texts, candidates=...)` with the default reader
  batching (32 windows, 2048 tokens, max_length 1000); answers `{"seconds", "cpu_s", "load_s", "outputs"}`:
  wall time (`time.perf_counter`), CPU seconds of all threads (`time.process_time`), the reader's load time on the
  workload's first call (`Relik(reader=..., task=..., window_size=..., window_stride=..., top_k=...)` is built
  once per workload, the previous one is dropped) and spans [start, end, label] / triplets per document;
- `{"quit": true}`.
So e2e.py can alternate the two implementations call by call (both never run at once): on a shared machine a
change of load then hits both sides alike. Candidates are one list per document ({TaskType: lists} for cIE,
where 1.0.7 ignores a plain list).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

# The answers own the real stdout; relik's log handlers write to sys.stdout (fd 1): send fd 1 to stderr.
PROTOCOL = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)
sys.path.insert(0, str(Path(__file__).resolve().parent))

import e2e_readers  # noqa: E402  (imports make_fixtures: offline env vars, torch, relik)
import numpy as np  # noqa: E402
import spacy  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from e2e_readers import mf  # noqa: E402
from relik.inference.annotator import Relik  # noqa: E402
from relik.inference.data.objects import TaskType  # noqa: E402


def quiet_relik_logs() -> None:
    for name in ["relik", *logging.root.manager.loggerDict]:
        if name.startswith("relik"):
            logging.getLogger(name).setLevel(logging.WARNING)


def answer(obj: dict[str, Any]) -> None:
    PROTOCOL.write(json.dumps(mf.jsonable(obj), ensure_ascii=False) + "\n")
    PROTOCOL.flush()


def output_view(out: Any) -> dict[str, Any]:
    """Spans and triplets of one RelikOutput (1.0.7's to_dict crashes on multi-window RE documents, issue #21)."""
    return {
        "spans": [[s.start, s.end, s.label] for s in out.spans],
        "triplets": [{"subject": [t.subject.start, t.subject.end, t.subject.label], "label": t.label,
                      "object": [t.object.start, t.object.end, t.object.label], "confidence": float(t.confidence)}
                     for t in out.triplets],
    }


def candidates_arg(wl: dict[str, Any]) -> Any:
    cands = wl["candidates"]
    if isinstance(cands, dict):
        return {TaskType(k): v for k, v in cands.items()}
    return cands


class Pipelines:
    """One reference `Relik` at a time (the last workload asked for)."""

    def __init__(self, job: dict[str, Any], folders: dict[str, Path]) -> None:
        self.workloads = {wl["name"]: wl for wl in job["workloads"]}
        self.specs, self.folders = job["readers"], folders
        self.name: str | None = None
        self.relik: Any = None

    def run(self, name: str) -> dict[str, Any]:
        wl = self.workloads[name]
        load_s = None
        if name != self.name:
            self.relik = None  # drop the previous reader first
            t = time.perf_counter()
            reader = e2e_readers.load(self.folders[wl["reader"]], self.specs[wl["reader"]])
            load_s = time.perf_counter() - t
            quiet_relik_logs()
            self.relik = Relik(reader=reader, task=wl["task"], window_size=wl["window_size"],
                               window_stride=wl["window_stride"], top_k=wl["top_k"])
            self.name = name
        cands = candidates_arg(wl)
        t, c = time.perf_counter(), time.process_time()
        outs = self.relik(wl["texts"], candidates=cands)  # the reader runs under torch.inference_mode itself
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
        outs = outs if isinstance(outs, list) else [outs]
        return {"seconds": seconds, "cpu_s": cpu, "load_s": load_s, "outputs": [output_view(o) for o in outs]}


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    torch.set_num_threads(int(job.get("threads") or os.cpu_count() or 1))
    if os.environ.get("RELIK_E2E_FLUSH_DENORMAL") == "1":  # diagnosis: subnormal floats flushed to zero, as XLA:CPU
        torch.set_flush_denormal(True)
    mf.patch_spacy()
    quiet_relik_logs()
    folders = {name: e2e_readers.build(name, spec) for name, spec in job["readers"].items()}
    answer({
        "ready": True,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "relik": importlib.metadata.version("relik"),
                     "numpy": np.__version__, "spacy": spacy.__version__},
        "threads": torch.get_num_threads(),
        "readers": {name: {"folder": str(folder), "build": json.loads((folder / "build.json").read_text())}
                    for name, folder in folders.items()},
    })
    pipelines = Pipelines(job, folders)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("quit"):
            break
        answer(pipelines.run(cmd["run"]))


if __name__ == "__main__":
    main()
