"""Optional AI drafting of a personal opening line over a chat-completions API.

Any OpenAI-compatible ``/v1/chat/completions`` endpoint works, for example a
model server on the vendor's own machine.  The model receives only the couple's
record and the vendor's notes.  Every answer passes
:func:`plaudit.personalisation.guardrails.check_draft` or is discarded.

Drafting never holds up a send: each request gets the smaller of the
configured timeout and the time the caller allows, and every failure (no
answer in time, an HTTP error, a body that is not a chat completion, a
rejected draft) ends in a :class:`DraftOutcome` that tells the caller to use
the template.  After repeated failures or timeouts a circuit breaker stops
calling the endpoint for a cool-down, and drafts end as ``skipped`` without a
request.  Nothing here raises for a misbehaving endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal, final

import httpx
import msgspec
import trio

from plaudit.config.model import BreakerConfig, DraftingConfig
from plaudit.connectors.tls import shared_ssl_context
from plaudit.personalisation.guardrails import DraftFacts, check_draft
from plaudit.reliability.breaker import BreakerState, CircuitBreaker

log = logging.getLogger(__name__)

DraftState = Literal["off", "accepted", "rejected", "failed", "timed_out", "skipped"]
# Less time than this is not worth a request.
MIN_SECONDS: Final = 0.1
# Three failed or timed-out drafts in a row pause drafting for a minute before
# one probe.  Each failed probe doubles the pause, up to 15 minutes.
DRAFT_BREAKER: Final = BreakerConfig(failure_threshold=3, open_initial=60.0, open_max=900.0)
# A completion with one sentence is a few hundred bytes, so a far larger body is no draft.
MAX_RESPONSE_BYTES: Final = 64 * 1024
_SYSTEM_PROMPT: Final = (
    "You write the first sentence of a thank-you e-mail from a wedding vendor to a couple. "
    "Use only the facts given: the couple's names, wedding date and venue, and the vendor's "
    "notes. Do not mention reviews, ratings or stars, and do not offer gifts, discounts or "
    "anything else. Do not add names, dates, numbers or places that are not given. Answer "
    "with the sentence only."
)


@final
class DraftOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The result of drafting: an accepted line, or the reason the template is used."""

    state: DraftState
    text: str = ""
    reason: str = ""


class _Message(msgspec.Struct, kw_only=True):
    content: str


class _Choice(msgspec.Struct, kw_only=True):
    message: _Message


class _Completion(msgspec.Struct, kw_only=True):
    choices: list[_Choice]


@final
class Drafter:
    """Asks one chat-completions endpoint for opening lines."""

    def __init__(
        self,
        config: DraftingConfig,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.config = config
        self._client = client
        self._counts: dict[str, int] = {}
        # ``clock`` times the breaker's pause only; request timeouts use trio's clock.
        self.breaker = CircuitBreaker("drafting", DRAFT_BREAKER, clock=clock)

    def __repr__(self) -> str:
        return (
            f"<Drafter {self.config.url} model={self.config.model!r} "
            f"breaker={self.breaker.state} {self._counts}>"
        )

    def statistics(self) -> dict[str, int]:
        """Return how many drafts ended in each state."""
        return dict(self._counts)

    async def draft(self, facts: DraftFacts, *, seconds: float) -> DraftOutcome:
        """Request an opening line within ``seconds``; endpoint failures become outcomes.

        While the breaker is open no request is made and the outcome is ``skipped``.
        """
        limit = min(self.config.timeout, seconds)
        if limit < MIN_SECONDS:
            outcome = DraftOutcome(state="timed_out", reason="no time left before the send")
        elif self.breaker.allow():
            outcome = await self._draft(facts, limit=limit)
            self._record(outcome)
        else:
            remaining = self.breaker.open_remaining()
            outcome = DraftOutcome(
                state="skipped",
                reason=f"drafting paused for {remaining:.0f} s after repeated failures",
            )
        self._counts[outcome.state] = self._counts.get(outcome.state, 0) + 1
        # Skips are not logged one by one: the breaker logs when it opens.
        if outcome.state not in ("accepted", "skipped"):
            log.warning(
                "personalisation.draft_unused",
                extra={"state": outcome.state, "reason": outcome.reason, "url": self.config.url},
            )
        return outcome

    def _record(self, outcome: DraftOutcome) -> None:
        # A rejected draft still came from a working endpoint.
        if outcome.state in ("failed", "timed_out"):
            self.breaker.record_failure()
            if self.breaker.state is BreakerState.OPEN:
                log.warning(
                    "personalisation.drafting_paused",
                    extra={"url": self.config.url, "seconds": self.breaker.open_remaining()},
                )
        else:
            self.breaker.record_success()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _draft(self, facts: DraftFacts, *, limit: float) -> DraftOutcome:
        try:
            headers = self._headers()
        except OSError as error:
            reason = f"cannot read api_key_file {self.config.api_key_file}: {error.strerror}"
            return DraftOutcome(state="failed", reason=reason)

        body = {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": _SYSTEM_PROMPT},
                {"role": "user", "content": msgspec.json.encode(facts).decode()},
            ],
            "temperature": 0.7,
            "max_tokens": 120,
        }
        with trio.move_on_after(limit):
            return await self._post(body, headers, facts, limit)
        return DraftOutcome(state="timed_out", reason=f"no answer within {limit:.1f} s")

    async def _post(
        self, body: dict[str, object], headers: dict[str, str], facts: DraftFacts, limit: float
    ) -> DraftOutcome:
        try:
            response = await self._http().post(
                self.config.url, json=body, headers=headers, timeout=limit
            )
        except httpx.TimeoutException:
            return DraftOutcome(state="timed_out", reason=f"no answer within {limit:.1f} s")
        except httpx.HTTPError as error:
            return DraftOutcome(state="failed", reason=f"request failed: {error!r}")

        if response.status_code != 200:
            return DraftOutcome(state="failed", reason=f"HTTP {response.status_code}")
        if len(response.content) > MAX_RESPONSE_BYTES:
            return DraftOutcome(state="failed", reason="the answer is too large")
        try:
            completion = msgspec.json.decode(response.content, type=_Completion)
            text = completion.choices[0].message.content
        except (msgspec.DecodeError, IndexError):
            return DraftOutcome(state="failed", reason="the answer is not a chat completion")

        line = " ".join(text.split()).strip("\"'“”")
        problem = check_draft(line, facts, max_chars=self.config.max_chars)
        if problem is not None:
            return DraftOutcome(state="rejected", reason=problem)
        return DraftOutcome(state="accepted", text=line)

    def _headers(self) -> dict[str, str]:
        if not self.config.api_key_file:
            return {}
        token = Path(self.config.api_key_file).read_text(encoding="utf-8").strip()
        return {"Authorization": f"Bearer {token}"}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(verify=shared_ssl_context(), follow_redirects=False)
        return self._client
