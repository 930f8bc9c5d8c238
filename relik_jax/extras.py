"""Optional parts of relik-jax and the error that says how to install one.

Heavy or platform-limited dependencies live in extras of the package (pyproject.toml), so that the base install
works everywhere (ScaNN, for example, has no macOS arm64 or Windows wheels). A feature that needs one imports it
where it is used and raises `missing_extra(...)` when it is absent.
"""

from __future__ import annotations

# extra -> what it enables (the distributions are listed in pyproject.toml)
EXTRAS = {
    "scann": "approximate search backend (DocumentIndex(..., backend='scann'))",
    "data": "TFDS / array_record builders of the reader-training windows (relik_jax.data.tfds)",
    "serve": "JSON web service (fastapi, uvicorn)",
    "plot": "training curves (matplotlib)",
    "hub": "downloads from the Hugging Face Hub (huggingface_hub)",
    "ray": "corpus annotation on Ray Data (relik-jax annotate --ray; ray[data], pyarrow)",
}


def missing_extra(package: str, extra: str, feature: str) -> ImportError:
    """ImportError for `feature` when `package` is not installed, naming the extra that provides it."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r} (known: {sorted(EXTRAS)})")
    return ImportError(f"{feature} needs the {package!r} package, which is not installed: "
                       f"pip install 'relik-jax[{extra}]'")
