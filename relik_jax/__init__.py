"""ReLiK in JAX/Flax NNX."""
