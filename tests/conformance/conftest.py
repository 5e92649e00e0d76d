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


# Conformance tests add lines here under a heading; they are printed at the
# end of the run whether or not output capture is on.
SUMMARY_KEY = pytest.StashKey[dict[str, list[str]]]()


@pytest.fixture
def conformance_summary(request: pytest.FixtureRequest) -> dict[str, list[str]]:
    """Return the run-wide mapping of summary heading to lines."""
    return request.config.stash.setdefault(SUMMARY_KEY, {})


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    summary = terminalreporter.config.stash.get(SUMMARY_KEY, {})
    for heading, lines in summary.items():
        terminalreporter.section(heading)
        for line in lines:
            terminalreporter.write_line(line)
