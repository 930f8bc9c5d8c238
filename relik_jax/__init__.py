"""relik-jax: ReLiK (Retrieve, Read and LinK) in JAX / Flax NNX.

The public API; each name lives in the subpackage of its concept (see the README's layout):

    from relik_jax import Relik
    relik = Relik.from_pretrained("path/to/pipeline")
    relik("Michael Jordan was one of the best players in the NBA.").spans

Names are resolved on first use (PEP 562), so `import relik_jax.text.words` stays light: it does not load JAX,
and runs where only the text layer's dependencies are installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from relik_jax.inference.outputs import RelikOutput, Span, Triplet
    from relik_jax.inference.pipeline import Relik, RelikConfig
    from relik_jax.reader.reader import Reader
    from relik_jax.retriever.encoder import Retriever
    from relik_jax.retriever.index import Document, DocumentIndex
    from relik_jax.text.windows import Window, WindowSplitter

EXPORTS = {
    "Relik": "relik_jax.inference.pipeline", "RelikConfig": "relik_jax.inference.pipeline",
    "RelikOutput": "relik_jax.inference.outputs", "Span": "relik_jax.inference.outputs",
    "Triplet": "relik_jax.inference.outputs",
    "Reader": "relik_jax.reader.reader",
    "Retriever": "relik_jax.retriever.encoder",
    "Document": "relik_jax.retriever.index", "DocumentIndex": "relik_jax.retriever.index",
    "Window": "relik_jax.text.windows", "WindowSplitter": "relik_jax.text.windows",
}
__all__ = ["Document", "DocumentIndex", "Reader", "Relik", "RelikConfig", "RelikOutput", "Retriever", "Span",
           "Triplet", "Window", "WindowSplitter"]  # = EXPORTS (tests/test_api.py)


def __getattr__(name: str) -> Any:
    if name not in EXPORTS:
        raise AttributeError(f"module 'relik_jax' has no attribute {name!r}")
    value = getattr(importlib.import_module(EXPORTS[name]), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *EXPORTS])
