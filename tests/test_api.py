"""The package root re-exports the public API, lazily (the text layer imports without JAX)."""

import importlib
import subprocess
import sys

import relik_jax


def test_root_exports_the_public_api():
    for name, module in relik_jax.EXPORTS.items():
        assert getattr(relik_jax, name) is getattr(importlib.import_module(module), name), name
    for name in ("Relik", "Reader", "Retriever", "DocumentIndex", "WindowSplitter"):
        assert name in relik_jax.__all__
    assert sorted(relik_jax.__all__) == sorted(relik_jax.EXPORTS)
    from relik_jax import Relik, WindowSplitter  # noqa: F401  (the README's import line)


def test_text_layer_imports_without_jax():
    code = "import sys, relik_jax.text.words, relik_jax.text.windows; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
