"""Text before any model: spaCy-compatible words, word windows, sub-word tokenizers."""
