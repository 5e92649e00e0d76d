"""check-config rules for template variants and the drafting endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from plaudit.config.loader import load_config
from plaudit.config.model import (
    CampaignConfig,
    CampaignStep,
    Config,
    DraftingConfig,
    PersonalisationConfig,
    TemplateVariant,
)
from plaudit.config.rules import check_rules
from plaudit.errors import ConfigError


def config_with(*variants: TemplateVariant, drafting: DraftingConfig | None = None) -> Config:
    step = CampaignStep(delay_days=10, subject="Hi", text="Hi", variants=list(variants))
    return Config(
        campaigns=[CampaignConfig(name="after-wedding", steps=[step])],
        personalisation=PersonalisationConfig(drafting=drafting),
    )


def problems(config: Config) -> dict[tuple[str | int, ...], str]:
    return {
        problem.path: problem.message
        for problem in check_rules(config, invalid=[])
        if problem.path[0] == "personalisation" or "variants" in problem.path
    }


def test_valid_variant_passes() -> None:
    variant = TemplateVariant(
        name="warm", subject="{{ first_names[0] }}", text="{{ opening_line }} {{ found_on }}"
    )

    assert problems(config_with(variant)) == {}


@pytest.mark.parametrize(
    ("variant", "key", "message"),
    [
        (TemplateVariant(name="base", subject="a", text="b"), "name", "invalid variant name"),
        (TemplateVariant(name=" ", subject="a", text="b"), "name", "invalid variant name"),
        (TemplateVariant(name="w", subject="{{ nope }}", text="b"), None, "nope"),
        (TemplateVariant(name="w", subject="a", text="{% if %}"), None, "correct the template"),
    ],
)
def test_invalid_variant_reported(variant: TemplateVariant, key: str | None, message: str) -> None:
    path: tuple[str | int, ...] = ("campaigns", 0, "steps", 0, "variants", 0)
    if key is not None:
        path = (*path, key)

    found = problems(config_with(variant))

    assert path in found
    assert message in found[path]


def test_duplicate_variant_reported() -> None:
    first = TemplateVariant(name="warm", subject="a", text="b")

    found = problems(config_with(first, first))

    assert "appears twice" in found[("campaigns", 0, "steps", 0, "variants", 1, "name")]


@pytest.mark.parametrize(
    ("drafting", "key", "message"),
    [
        (DraftingConfig(url="ftp://host/x", model="m"), "url", "invalid URL"),
        (DraftingConfig(url="http:///v1", model="m"), "url", "invalid URL"),
        (DraftingConfig(url="http://127.0.0.1:8080/v1", model=" "), "model", "empty"),
        (
            DraftingConfig(url="http://127.0.0.1:8080/v1", model="m", api_key_file="key"),
            "api_key_file",
            "relative path",
        ),
    ],
)
def test_drafting_problems(drafting: DraftingConfig, key: str, message: str) -> None:
    found = problems(config_with(drafting=drafting))

    assert message in found[("personalisation", "drafting", key)]


def test_unknown_personalisation_key_rejected(tmp_path: Path) -> None:
    path = tmp_path / "plaudit.toml"
    path.write_text(
        '[[campaigns]]\nname = "a"\n[[campaigns.steps]]\ndelay_days = 1\nsubject = "s"\n'
        'text = "t"\n[campaigns.personalisation]\nholdout = 0.1\nhold_out = 0.2\n',
        encoding="utf-8",
    )

    with pytest.raises(ConfigError, match="hold_out"):
        load_config(path)


def test_holdout_above_one_rejected(tmp_path: Path) -> None:
    path = tmp_path / "plaudit.toml"
    path.write_text(
        '[[campaigns]]\nname = "a"\n[[campaigns.steps]]\ndelay_days = 1\nsubject = "s"\n'
        'text = "t"\n[campaigns.personalisation]\nholdout = 1.5\n',
        encoding="utf-8",
    )

    with pytest.raises(ConfigError, match="holdout"):
        load_config(path)
