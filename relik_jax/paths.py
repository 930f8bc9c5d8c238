"""Where the project finds things that do not live in the repository (datasets, caches)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# `../shared/` beside the checkout (CI clones the repo with shared/ next to it).
SHARED = Path(os.environ.get("RELIK_JAX_SHARED", REPO_ROOT.parent / "shared"))
CACHE = Path(os.environ.get("RELIK_JAX_CACHE", Path.home() / ".cache" / "relik-jax"))


def shared_path(*parts: str) -> Path:
    """Path under `../shared/`, or a FileNotFoundError that names what is missing and where it was expected."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"missing shared data: {path} (expected the project's shared/ folder beside the checkout; "
            "set RELIK_JAX_SHARED to its location)"
        )
    return path


def data_path(*parts: str) -> Path:
    """Path under `../shared/data/` (real datasets; never copied into the repository)."""
    return shared_path("data", *parts)
