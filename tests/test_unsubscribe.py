"""One-click unsubscribe: signed tokens, the key file, and the pages over real HTTP."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import httpx
import pytest

from plaudit.config.model import Config, InboundConfig
from plaudit.inbound.providers import Verifiers
from plaudit.inbound.server import InboundServer
from plaudit.messaging.unsubscribe import (
    KEY_BYTES,
    KEY_FILE,
    UnsubscribeKeyError,
    UnsubscribePages,
    UnsubscribeTokens,
    is_one_click,
    load_or_create_key,
)
from tests.support_notifier import NotifierBench, notifier_bench, two_step_config

COUPLES = (
    "names,email,wedding_date,venue\n"
    "Ana Pires & Ben Cole,ana@example.com; ben@example.com,2026-05-02,Orchard Barn\n"
)
TEXT = "Hello {{ couple_names }}. Unsubscribe: {{ unsubscribe_link }}"
StopEvent = Literal["review", "unsubscribe", "hard_bounce", "complaint"]
ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Site(NotifierBench):
    # The inbound server's base URL, set once it listens.
    url: str = ""

    @cached_property
    def tokens(self) -> UnsubscribeTokens:
        return UnsubscribeTokens(load_or_create_key(self.folder))

    def states(self) -> list[tuple[object, ...]]:
        return self.journal.query("SELECT step, state FROM requests ORDER BY step")

    def suppressed(self) -> list[tuple[object, ...]]:
        return self.journal.query("SELECT address, reason FROM suppressions ORDER BY address")

    def token_in_last_message(self) -> str:
        header = str(self.sink.messages[-1].parsed()["List-Unsubscribe"])
        https = header.split(",", maxsplit=1)[0].strip().strip("<>")
        return https.rpartition("/")[2]


@asynccontextmanager
async def site(tmp_path: Path, *, stop_on: list[StopEvent] | None = None) -> AsyncIterator[Site]:
    def config(port: int) -> Config:
        return two_step_config(port, text=TEXT, stop_on=stop_on or ["review", "unsubscribe"])

    async with notifier_bench(tmp_path, Site, config, COUPLES, vendor="W") as (web, nursery):
        web.actor.unsubscribe_tokens = web.tokens
        pages = UnsubscribePages(web.facade, web.tokens, lambda: web.config)
        server = InboundServer(
            web.facade,
            Verifiers(InboundConfig(port=0)),
            max_body_bytes=4096,
            unsubscribe_pages=pages,
        )
        host, port = await nursery.start(server.serve, "127.0.0.1", 0)
        web.url = f"http://{host}:{port}"
        yield web


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url)


async def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url, content=body, headers=headers or ONE_CLICK)


def test_token_verifies_for_its_couple_only() -> None:
    tokens = UnsubscribeTokens(b"k" * KEY_BYTES)
    token = tokens.token_for(7, couple_id=3)

    assert tokens.token_for(7, couple_id=3) == token
    assert tokens.matches(token, 3)
    assert not tokens.matches(token, 4)
    assert not UnsubscribeTokens(b"x" * KEY_BYTES).matches(token, 3)
    assert not tokens.matches(token.replace("7.", "8.", 1), 3)


def test_key_file_created_private_and_reused(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    mode = stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode)

    assert len(key) == KEY_BYTES
    assert mode == 0o600
    assert load_or_create_key(tmp_path) == key


def test_short_key_file_rejected(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_bytes(b"short")

    with pytest.raises(UnsubscribeKeyError, match="has 5 bytes, expected 32; delete it"):
        load_or_create_key(tmp_path)


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click", True),
        ("", b"List-Unsubscribe=One-Click\r\n", True),
        (
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
            b"One-Click\r\n--XyZ--\r\n",
            True,
        ),
        ("application/x-www-form-urlencoded", b"List-Unsubscribe=Other", False),
        ("application/x-www-form-urlencoded", b"", False),
        ("application/json", b'{"List-Unsubscribe": "One-Click"}', False),
        ("multipart/form-data; boundary=XyZ", b"not multipart", False),
    ],
)
def test_one_click_body(content_type: str, body: bytes, expected: bool) -> None:
    assert is_one_click(content_type, body) is expected


async def test_link_in_header_unsubscribes(tmp_path: Path) -> None:
    async with site(tmp_path) as web:
        await web.send_next()
        token = web.token_in_last_message()
        response = await post(f"{web.url}/unsubscribe/{token}", b"List-Unsubscribe=One-Click")

        assert response.status_code == 200
        assert "unsubscribed" in response.text
        assert web.suppressed() == [
            ("ana@example.com", "unsubscribe"),
            ("ben@example.com", "unsubscribe"),
        ]
        assert web.states() == [(0, "sent"), (1, "stopped")]


async def test_next_send_suppressed_without_stop_on(tmp_path: Path) -> None:
    async with site(tmp_path, stop_on=["review"]) as web:
        await web.send_next()
        token = web.token_in_last_message()
        await post(f"{web.url}/unsubscribe/{token}", b"List-Unsubscribe=One-Click")
        assert web.states() == [(0, "sent"), (1, "scheduled")]

        await web.facade.transaction(
            lambda tx: tx.execute("UPDATE jobs SET next_run_at = 0 WHERE state = 'ready'")
        )
        await web.send_next()

        assert web.states() == [(0, "sent"), (1, "suppressed")]
        assert len(web.sink.messages) == 1


async def test_get_shows_form_and_changes_nothing(tmp_path: Path) -> None:
    async with site(tmp_path) as web:
        await web.send_next()
        token = web.token_in_last_message()
        response = await get(f"{web.url}/unsubscribe/{token}")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert '<form method="post">' in response.text
        assert 'name="List-Unsubscribe" value="One-Click"' in response.text
        assert web.suppressed() == []


async def test_repeated_post_harmless(tmp_path: Path) -> None:
    async with site(tmp_path) as web:
        await web.send_next()
        url = f"{web.url}/unsubscribe/{web.token_in_last_message()}"
        first = await post(url, b"List-Unsubscribe=One-Click")
        second = await post(url, b"List-Unsubscribe=One-Click")
        events = web.journal.query("SELECT count(*) FROM message_events WHERE kind = 'unsubscribe'")

        assert (first.status_code, second.status_code) == (200, 200)
        assert events == [(2,)]


@pytest.mark.parametrize(
    "token",
    [
        "1.AAAAAAAAAAAAAAAAAAAAAA",
        "99.AAAAAAAAAAAAAAAAAAAAAA",
        "99999999999999999999.AAAAAAAAAAAAAAAAAAAAAA",
        "not-a-token-at-all-1234",
        "x",
        "a" * 400,
    ],
)
async def test_forged_token_not_found(tmp_path: Path, token: str) -> None:
    async with site(tmp_path) as web:
        response = await post(f"{web.url}/unsubscribe/{token}", b"List-Unsubscribe=One-Click")
        page = await get(f"{web.url}/unsubscribe/{token}")

        assert response.status_code == 404
        assert page.status_code == 404
        assert web.suppressed() == []


async def test_token_of_other_couple_rejected(tmp_path: Path) -> None:
    async with site(tmp_path) as web:
        # Request 1 belongs to couple 1; a valid MAC for couple 2 must not match it.
        forged = web.tokens.token_for(1, couple_id=2)
        response = await post(f"{web.url}/unsubscribe/{forged}", b"List-Unsubscribe=One-Click")

        assert response.status_code == 404
        assert web.suppressed() == []


async def test_post_without_one_click_body_rejected(tmp_path: Path) -> None:
    async with site(tmp_path) as web:
        token = web.tokens.token_for(1, couple_id=1)
        response = await post(f"{web.url}/unsubscribe/{token}", b"unsubscribe=yes")

        assert response.status_code == 400
        assert "List-Unsubscribe=One-Click" in response.text
        assert web.suppressed() == []


async def test_random_token_still_honoured(tmp_path: Path) -> None:
    async with site(tmp_path) as web:
        await web.facade.transaction(
            lambda tx: tx.execute(
                "UPDATE requests SET unsubscribe_token = 'Rand0mTokenFromBefore_xyz' WHERE id = 1"
            )
        )
        response = await post(
            f"{web.url}/unsubscribe/Rand0mTokenFromBefore_xyz", b"List-Unsubscribe=One-Click"
        )

        assert response.status_code == 200
        assert len(web.suppressed()) == 2


async def test_other_methods_rejected(tmp_path: Path) -> None:
    async with site(tmp_path) as web:
        token = web.tokens.token_for(1, couple_id=1)
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.delete(f"{web.url}/unsubscribe/{token}")

        assert response.status_code == 405
        assert web.suppressed() == []


async def test_oversized_body_rejected(tmp_path: Path) -> None:
    async with site(tmp_path) as web:
        token = web.tokens.token_for(1, couple_id=1)
        body = b"List-Unsubscribe=One-Click&" + b"x" * 20_000
        response = await post(f"{web.url}/unsubscribe/{token}", body)

        assert response.status_code == 413
        assert web.suppressed() == []


@pytest.mark.parametrize(
    "path", ["/unsubscribe/", "/unsubscribe/../inbound/postmark", "/unsubscribe/%31.AAAA"]
)
async def test_odd_paths_not_found(tmp_path: Path, path: str) -> None:
    async with site(tmp_path) as web:
        response = await post(f"{web.url}{path}", b"List-Unsubscribe=One-Click")

        assert response.status_code == 404
        assert web.suppressed() == []
