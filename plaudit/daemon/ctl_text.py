"""Free text in ``plaudit ctl`` output: reasons and errors printed whole, outside tables."""

from __future__ import annotations

import textwrap
from typing import Any, Final

# Columns of a wrapped line, its label included.  A word longer than that,
# such as a URL, stays whole on a line of its own.
WRAP_WIDTH: Final = 88


def wrap_field(label: str, value: Any) -> list[str]:
    """Return ``label`` followed by ``value`` in full, wrapped under the label's indent.

    Table cells cut long text to fit a column, so reasons and error messages
    go through this instead.  ``None`` and the empty string print as ``-``.
    """
    text = "-" if value is None or value == "" else " ".join(str(value).split())
    indent = " " * len(label)
    return textwrap.wrap(
        text,
        width=max(WRAP_WIDTH, len(label) + 20),
        initial_indent=label,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
