"""``plaudit inspect storefront`` messages name the saved file, not a profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from plaudit.connectors.marketplace.inspect import inspect_storefront
from plaudit.errors import PlauditError

FIXTURES = Path(__file__).parent / "fixtures" / "marketplace"


def test_blocked_page_names_file() -> None:
    path = str(FIXTURES / "challenge.html")

    with pytest.raises(PlauditError) as caught:
        inspect_storefront(path, "hitched")

    assert f"for the saved page {path} " in str(caught.value)
    assert "profile" not in str(caught.value).split("switch the profile")[0]


def test_changed_markup_names_file(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><body><p>nothing here</p></body></html>", encoding="utf-8")

    with pytest.raises(PlauditError) as caught:
        inspect_storefront(str(page), "hitched")

    assert str(caught.value).startswith(f"Hitched saved page {page} no longer matches")
