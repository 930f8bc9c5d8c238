"""The reader (paper §3.2): span / triplet heads over DeBERTa, row building, decoding, losses, checkpoints."""
