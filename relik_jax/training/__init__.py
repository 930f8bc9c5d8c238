"""Training loops: the shared Trainer, reader and retriever training."""
