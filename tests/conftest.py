"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import reference_harness` in any import mode
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # `configs`, `evaluate` (the repo root)

from reference_harness import reference_fixtures, reference_patch_fixtures, reference_pipeline_folders  # noqa: E402


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Golden fixtures of the reference implementation (relik 1.0.7); layout in tests/reference/README.md."""
    return reference_fixtures()


@pytest.fixture(scope="session")
def reference_pipelines_dir() -> Path:
    """relik 1.0.7 pipeline folders (`Relik.save_pretrained`) + the reference's outputs when it loads them
    (tests/reference/make_pipeline_folders.py)."""
    return reference_pipeline_folders()


@pytest.fixture(scope="session")
def reference_patches_dir() -> Path:
    """The reference span reader on windows that need several candidate patches
    (tests/reference/make_patch_fixtures.py)."""
    return reference_patch_fixtures()
