"""Fixtures for tests that read the shared corpus of real platform files."""

from __future__ import annotations

from pathlib import Path

import pytest

# The corpus sits beside the repository, never inside it.
CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"


@pytest.fixture
def corpus_dir() -> Path:
    """Return the corpus folder, or skip the test when this checkout has none."""
    if not CORPUS.is_dir():
        pytest.skip(f"corpus folder {CORPUS} is absent; conformance tests need a checkout with it")

    return CORPUS
