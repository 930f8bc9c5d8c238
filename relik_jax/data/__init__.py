"""Corpora (AIDA, CoNLL04, NYT, REBEL), JSONL, windowed training data, toy data, TFDS builders."""
