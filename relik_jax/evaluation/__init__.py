"""Metrics, reader and retriever evaluation, GERBIL A2KB scoring and NIF service."""
