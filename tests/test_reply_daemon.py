"""``plaudit ctl review reply`` against a running daemon and the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio

from tests.support import DaemonDirs, ctl, open_daemon, query, start_sandbox, stop_daemon, wait_for

pytestmark = pytest.mark.slow

REPLY = "Thank you both, it was a joy!"


def first_unreplied(journal: Path, platform: str) -> str | None:
    rows = query(
        journal,
        "SELECT review_id FROM reviews WHERE platform = ? AND reply_text IS NULL "
        "AND deleted_at IS NULL ORDER BY review_id LIMIT 1",
        (platform,),
    )
    return str(rows[0][0]) if rows else None


def reply_job_state(journal: Path) -> str | None:
    rows = query(journal, "SELECT state FROM jobs WHERE kind = 'review.reply'")
    return str(rows[0][0]) if rows else None


async def test_ctl_reply_reaches_google_once(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=6, script_seconds=0)
        dirs.write_config(base_url, sync_interval=3600.0)
        process = await open_daemon(dirs)
        try:
            review_id = await wait_for(
                lambda: first_unreplied(dirs.journal, "google"),
                timeout=120.0,
                what="a synced Google review",
            )
            queued = ctl(dirs, "--json", "review", "reply", f"google:{review_id}", "--text", REPLY)
            assert queued.returncode == 0, queued.stderr
            assert json.loads(queued.stdout)["state"] == "queued"
            again = ctl(dirs, "--json", "review", "reply", f"google:{review_id}", "--text", REPLY)
            assert json.loads(again.stdout)["state"] == "already_queued"

            await wait_for(
                lambda: reply_job_state(dirs.journal) == "succeeded",
                timeout=120.0,
                what="the reply job to succeed",
            )
            status = ctl(dirs, "review", "reply", "--status", f"google:{review_id}")
            yelp_id = await wait_for(
                lambda: first_unreplied(dirs.journal, "yelp"),
                timeout=120.0,
                what="a synced Yelp review",
            )
            yelp = ctl(dirs, "review", "reply", f"yelp:{yelp_id}", "--text", REPLY)
        finally:
            await stop_daemon(process)

        async with httpx.AsyncClient() as http:
            stats = (await http.get(f"{base_url}/_sandbox/stats")).json()
        nursery.cancel_scope.cancel()

    assert status.returncode == 0, status.stderr
    assert REPLY in status.stdout
    assert "succeeded" in status.stdout
    assert yelp.returncode == 1
    assert "Yelp has no reply API" in yelp.stderr
    assert stats["requests"]["reviews.reply"] == 1
    events = query(
        dirs.journal,
        "SELECT count(*) FROM events WHERE type = 'review.replied' AND subject = ?",
        (review_id,),
    )
    assert events == [(1,)]
