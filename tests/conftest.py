"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import reference_harness` in any import mode
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # `configs`, `evaluate` (the repo root)

from reference_harness import reference_fixtures  # noqa: E402


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Golden fixtures of the reference implementation (relik 1.0.7); layout in tests/reference/README.md."""
    return reference_fixtures()
