"""Campaign tables: the review-request steps, their variants, and send-time personalisation."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from plaudit.config.base import Seconds, Strict


class CampaignStep(Strict, kw_only=True, frozen=True):
    """One message of a campaign."""

    # "auto" picks one of ``channels`` per couple when the step is planned.
    channel: Literal["email", "sms", "push", "auto"] = "email"
    # The channels an "auto" step may use; the holdout group gets the first.
    channels: list[Literal["email", "sms", "push"]] = msgspec.field(default_factory=list)
    # Days after the wedding for the first step, after the previous step otherwise.
    delay_days: Annotated[float, msgspec.Meta(ge=0, le=365)]
    # Liquid template sources; check-config renders each with sample values.
    subject: str
    text: str
    html: str = ""
    # Platforms from [vendor] review_links to include; empty means all.
    platforms: list[str] = msgspec.field(default_factory=list)
    # Other wordings tried against this template by Thompson sampling on reviews.
    variants: list[TemplateVariant] = msgspec.field(default_factory=list)
    # Hours after the due time within which send-time optimisation may place the send.
    send_window_hours: Annotated[float, msgspec.Meta(ge=0, le=168)] = 24.0


class TemplateVariant(Strict, kw_only=True, frozen=True):
    """One ``[[campaigns.steps.variants]]`` entry: another wording of its step."""

    # Stored with every assignment; "base" names the step's own template.
    name: str
    subject: str
    text: str
    html: str = ""


class CampaignPersonalisation(Strict, kw_only=True, frozen=True):
    """``[campaigns.personalisation]``: send-time optimisation and the holdout group."""

    send_time: bool = True
    # Share of couples that always get the step's own template at its due time.
    holdout: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.1
    # Days after a send within which a detected review counts as a conversion.
    conversion_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 14


class CampaignConfig(Strict, kw_only=True, frozen=True):
    """One ``[[campaigns]]`` entry: the steps sent to each imported couple."""

    name: str
    steps: list[CampaignStep]
    # Events that cancel a couple's remaining steps.  A suppressed address
    # (unsubscribe, hard bounce, complaint) never receives mail whatever this
    # lists, because the suppression list is checked before every send.
    stop_on: list[Literal["review", "unsubscribe", "hard_bounce", "complaint"]] = msgspec.field(
        default_factory=lambda: ["review", "unsubscribe", "hard_bounce", "complaint"]
    )
    personalisation: CampaignPersonalisation = msgspec.field(
        default_factory=CampaignPersonalisation
    )


class DraftingConfig(Strict, kw_only=True, frozen=True):
    """``[personalisation.drafting]``: an OpenAI-compatible chat-completions endpoint."""

    # The full endpoint URL, e.g. http://127.0.0.1:8080/v1/chat/completions.
    url: str
    model: str
    # File containing the bearer token; empty sends no Authorization header.
    api_key_file: str = ""
    # Seconds for one draft request, never more than the time left before the send.
    timeout: Seconds = 10.0
    max_chars: Annotated[int, msgspec.Meta(ge=20, le=1000)] = 300
    # Seconds a due send waits for a draft that is not ready; 0 sends the template at once.
    send_wait: Annotated[float, msgspec.Meta(ge=0, le=5)] = 0.5


class PersonalisationConfig(Strict, kw_only=True, frozen=True):
    """``[personalisation]``: how strongly thin send-time data leans on pooled data."""

    # Pseudo-counts: how many observations of the vendor's pattern back each couple's model.
    recipient_prior_weight: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 4.0
    # Pseudo-counts of the uniform prior behind the vendor's pattern.
    vendor_prior_weight: Annotated[float, msgspec.Meta(gt=0, le=10000)] = 24.0
    drafting: DraftingConfig | None = None
