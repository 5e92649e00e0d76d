"""Bounded reading of provider responses, so a hostile or broken server cannot fill memory."""

from __future__ import annotations

from typing import Final

import httpx

# Twilio and push service responses are a few hundred bytes.
MAX_RESPONSE_BYTES: Final = 64 * 1024


async def read_limited(response: httpx.Response, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """Return at most ``limit`` bytes of the decoded body and leave the rest unread."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]
