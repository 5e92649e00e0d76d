"""Vendor templates: Liquid in a sandbox, and check-config catching bad ones."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from plaudit.config.check import check_config
from plaudit.messaging.templates import SAMPLE_VARIABLES, MessageTemplate, TemplateError


def render_text(source: str) -> str:
    return MessageTemplate("t", subject="Subject", text=source).render(SAMPLE_VARIABLES).text


def test_template_renders_variables() -> None:
    source = "Dear {{ couple_names }}, {{ venue }} on {{ wedding_date }}. {{ unsubscribe_link }}"

    text = render_text(source)

    assert text == ("Dear Ana & Ben, The Old Mill on 2026-06-13. https://unsubscribe.invalid/token")


def test_template_loops_over_links() -> None:
    text = render_text(
        "{% for link in review_links %}{{ link.platform }}={{ link.url }}{% endfor %}"
    )

    assert text == "google=https://reviews.invalid/google"


def test_html_part_escaped() -> None:
    template = MessageTemplate("t", subject="s", text="t", html="<p>{{ couple_names }}</p>")

    assert template.render(SAMPLE_VARIABLES).html == "<p>Ana &amp; Ben</p>"


def test_subject_line_breaks_removed() -> None:
    template = MessageTemplate("t", subject="Hello\n{{ vendor }}\r\nX", text="body")

    assert template.render(SAMPLE_VARIABLES).subject == "Hello Sample Photography X"


@pytest.mark.parametrize(
    "source",
    [
        "{{ couple_name }}",
        "{{ vendor.__class__ }}",
        "{{ review_links.__class__.__mro__ }}",
        "{{ review_links[0].__class__.__init__.__globals__ }}",
        "{{ vendor.__len__ }}",
    ],
)
def test_unknown_or_internal_name_rejected(source: str) -> None:
    with pytest.raises(TemplateError, match="undefined"):
        render_text(f"Hello {source}")


def test_syntax_error_rejected_at_parse() -> None:
    with pytest.raises(TemplateError, match="text"):
        MessageTemplate("t", subject="s", text="{% if %}yes{% endif %}")


def test_blank_text_rejected() -> None:
    with pytest.raises(TemplateError, match="empty"):
        render_text("{% if false %}hidden{% endif %}")


def test_runaway_loop_stopped() -> None:
    with pytest.raises(TemplateError, match="limit"):
        render_text("{% for i in (1..1000000) %}x{% endfor %}")


CONFIG = """
[vendor]
name = "Willow Studio"
postal_address = "12 Elm Street, Springfield, IL 62701"
from_address = "hello@willow.example"
unsubscribe_url = "https://willow.example/unsubscribe"
unsubscribe_mailto = "unsubscribe@willow.example"
review_links = { google = "https://reviews.invalid/google" }

[smtp]
host = "127.0.0.1"
port = 2525
security = "none"

[[campaigns]]
name = "after-wedding"

[[campaigns.steps]]
delay_days = 10
subject = "Thank you"
text = "TEXT"
"""


def run_check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "plaudit.toml"
    path.write_text(CONFIG.replace("TEXT", text))
    code = check_config(str(path), out=sys.stdout, err=sys.stderr)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_check_config_accepts_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run_check(tmp_path, "Hi {{ couple_names }}", capsys)

    assert code == 0, output


def test_check_config_catches_unknown_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_check(tmp_path, "Hi {{ couple_name }}", capsys)

    assert code != 0
    # Located at the key of the part that fails, on its own line of the file.
    text_line = CONFIG.splitlines().index('text = "TEXT"') + 1
    assert f"plaudit.toml:{text_line}:" in output
    assert "campaigns[0].steps[0].text:" in output
    assert "couple_name" in output


def test_check_config_catches_syntax_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_check(tmp_path, "Hi {% if %}", capsys)

    assert code != 0
    assert "missing expression" in output


def test_check_config_rejects_yelp_link(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plaudit.toml"
    config = CONFIG.replace("TEXT", "Hi").replace(
        '{ google = "https://reviews.invalid/google" }',
        '{ google = "https://reviews.invalid/google", yelp = "https://reviews.invalid/y" }',
    )
    path.write_text(config)

    code = check_config(str(path), out=sys.stdout, err=sys.stderr)

    assert code != 0
    assert "vendor.review_links.yelp" in capsys.readouterr().err


def test_check_config_requires_smtp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plaudit.toml"
    config = CONFIG.replace("TEXT", "Hi")
    start = config.index("[smtp]")
    path.write_text(config[:start] + config[config.index("[[campaigns]]") :])

    code = check_config(str(path), out=sys.stdout, err=sys.stderr)

    assert code != 0
    assert "[smtp]" in capsys.readouterr().err


def test_check_config_requires_unsubscribe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plaudit.toml"
    config = CONFIG.replace("TEXT", "Hi").replace("unsubscribe_url", "reply_to")
    path.write_text(config.replace('unsubscribe_mailto = "unsubscribe@willow.example"\n', ""))

    code = check_config(str(path), out=sys.stdout, err=sys.stderr)

    assert code != 0
    assert "vendor.unsubscribe_url" in capsys.readouterr().err
