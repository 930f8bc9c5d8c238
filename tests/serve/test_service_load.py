"""benchmarks/service_load.py at a small size (the acceptance run is 2,000 valid documents, 1,000 bad requests, 100
clients, a 200,000-character document): both endpoints, nothing lost, every bad request answered as it must be."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_service_load_small():
    spec = importlib.util.spec_from_file_location("service_load", ROOT / "benchmarks" / "service_load.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.run(n_valid=60, n_bad=60, clients=12, long_chars=20_000, warmup=4)
    assert r["failures"] == [] and r["lost"] == 0 and r["long_doc"]["ok"], r
    for key in ("valid", "malformed", "hostile_valid", "fault"):
        for endpoint in ("nif", "json"):
            assert r[key][endpoint]["sent"] > 0 and r[key][endpoint]["ok"] == r[key][endpoint]["sent"], (key, r)
    assert r["worker"]["failed"] == r["fault"]["nif"]["sent"] + r["fault"]["json"]["sent"]
