"""relik-jax: ReLiK (Retrieve, Read and LinK) in JAX / Flax NNX.

The public API; each name lives in the subpackage of its concept (see the README's layout):

    from relik_jax import Relik
    relik = Relik.from_pretrained("path/to/pipeline")
    relik("Michael Jordan was one of the best players in the NBA.").spans
"""

from relik_jax.inference.outputs import RelikOutput, Span, Triplet
from relik_jax.inference.pipeline import Relik, RelikConfig
from relik_jax.reader.reader import Reader
from relik_jax.retriever.encoder import Retriever
from relik_jax.retriever.index import Document, DocumentIndex
from relik_jax.text.windows import Window, WindowSplitter

__all__ = ["Document", "DocumentIndex", "Reader", "Relik", "RelikConfig", "RelikOutput", "Retriever", "Span",
           "Triplet", "Window", "WindowSplitter"]
