"""The retriever (paper §3.1): E5 bi-encoder, document index (exact / ScaNN), NCE loss."""
