"""Annotation services above the pipeline: one worker per model (`worker.py`: batching, fairness, per-document
isolation, back-pressure), Relik as its backend (`backends.py`) and the JSON HTTP API compatible with relik's
`relik serve` (`json_api.py`, FastAPI + uvicorn: the `[serve]` extra). The NIF service for GERBIL
(`relik_jax.evaluation.gerbil.service`) runs on the same worker."""
