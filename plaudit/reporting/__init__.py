"""``plaudit report``: review figures per vendor and platform from the journal.

- ``plaudit.reporting.model``: the figures as structs, encoded as the JSON output.
- ``plaudit.reporting.figures``: computing them from the journal; read-only.
- ``plaudit.reporting.comparison``: trends and the review link to lead with.
- ``plaudit.reporting.render``: text tables and CSV files.
- ``plaudit.reporting.html``: one self-contained HTML page with inline SVG charts.
- ``plaudit.reporting.command``: the command line.
"""
