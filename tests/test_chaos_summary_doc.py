"""docs/chaos-summary.md names every figure that ``plaudit demo --chaos --json`` prints."""

from __future__ import annotations

import ast
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
DOC = REPOSITORY / "docs" / "chaos-summary.md"
# (module file, function) pairs whose dict literals build the summary.
SUMMARY_BUILDERS = [
    ("plaudit/chaos_summary.py", "summarise"),
    ("plaudit/chaos_figures.py", "sync_accuracy"),
    ("plaudit/chaos_figures.py", "request_figures"),
    ("plaudit/chaos_mail.py", "figures"),
    ("plaudit/chaos_storefront.py", "storefront_figures"),
]


def _dict_keys(path: Path, function: str) -> set[str]:
    """Return the string keys of every dict literal in ``function`` of the module at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    keys: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name != function:
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Dict):
                keys.update(
                    key.value
                    for key in inner.keys
                    if isinstance(key, ast.Constant) and isinstance(key.value, str)
                )
    return keys


def test_summary_builders_found() -> None:
    for module, function in SUMMARY_BUILDERS:
        assert _dict_keys(REPOSITORY / module, function), f"{module}: {function} has no dict keys"


def test_chaos_doc_names_every_figure() -> None:
    text = DOC.read_text(encoding="utf-8")
    keys = set().union(*(_dict_keys(REPOSITORY / m, f) for m, f in SUMMARY_BUILDERS))

    undocumented = sorted(key for key in keys if f"`{key}`" not in text)

    assert undocumented == []


def test_readme_links_chaos_doc() -> None:
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")

    assert "`docs/chaos-summary.md` explains each figure" in readme
