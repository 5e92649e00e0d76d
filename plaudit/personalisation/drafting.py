"""Optional AI drafting of a personal opening line over a chat-completions API.

Any OpenAI-compatible ``/v1/chat/completions`` endpoint works, for example a
model server on the vendor's own machine.  The model receives only the couple's
record and the vendor's notes.  Every answer passes
:func:`plaudit.personalisation.guardrails.check_draft` or is discarded.

Drafting never holds up a send: each request gets the smaller of the
configured timeout and the time left before the send, and every failure
(no answer in time, an HTTP error, a body that is not a chat completion, a
rejected draft) ends in a :class:`DraftOutcome` that tells the caller to use
the template.  Nothing here raises for a misbehaving endpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final, Literal, final

import httpx
import msgspec
import trio

from plaudit.config.model import DraftingConfig
from plaudit.connectors.tls import shared_ssl_context
from plaudit.personalisation.guardrails import DraftFacts, check_draft

log = logging.getLogger(__name__)

DraftState = Literal["off", "accepted", "rejected", "failed", "timed_out"]
# Less time than this before the send is not worth a request.
MIN_SECONDS: Final = 0.5
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

    def __init__(self, config: DraftingConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._client = client
        self._counts: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<Drafter {self.config.url} model={self.config.model!r} {self._counts}>"

    def statistics(self) -> dict[str, int]:
        """Return how many drafts ended in each state."""
        return dict(self._counts)

    async def draft(self, facts: DraftFacts, *, seconds: float) -> DraftOutcome:
        """Request an opening line within ``seconds``; endpoint failures become outcomes."""
        outcome = await self._draft(facts, seconds=seconds)
        self._counts[outcome.state] = self._counts.get(outcome.state, 0) + 1
        if outcome.state != "accepted":
            log.warning(
                "personalisation.draft_unused",
                extra={"state": outcome.state, "reason": outcome.reason, "url": self.config.url},
            )
        return outcome

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _draft(self, facts: DraftFacts, *, seconds: float) -> DraftOutcome:
        limit = min(self.config.timeout, seconds)
        if limit < MIN_SECONDS:
            return DraftOutcome(state="timed_out", reason="no time left before the send")
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
