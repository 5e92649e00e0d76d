"""A real ``plaudit run`` process bringing in marketplace reviews from the sandbox.

One daemon reads a storefront page, a Maildir of notification e-mails and a
watched folder, meets a bot-challenge page, and serves ``ctl verify``.  It
runs in real time: every wait has a generous timeout stated at the call.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import trio

from plaudit.sandbox.marketplace import write_notifications
from plaudit.sandbox.standin import StandInReview
from tests.support import DaemonDirs, ctl, open_daemon, query, start_sandbox, stop_daemon, wait_for

pytestmark = pytest.mark.slow

# Files in the watched folder are read once they are older than its settle time.
LONG_AGO = 1_600_000_000


def marketplace_table(base_url: str, root: Path) -> str:
    pages = f"{base_url}/marketplace"
    return f"""
[platforms.marketplace]
contact = "ops@example.com"
mailbox_interval = 0.5
import_interval = 0.5
allow_short_poll_interval = true

[[platforms.marketplace.profiles]]
site = "hitched"
profile_id = "willow-barn"
vendor_name = "The Willow Barn"
storefront_url = "{pages}/hitched/willow-barn.htm"
allow_any_host = true
modes = ["storefront", "mailbox", "import"]
maildir = "{root / "mail"}"
import_folder = "{root / "drop"}"
poll_interval = 3600

[[platforms.marketplace.profiles]]
site = "hitched"
profile_id = "challenge"
vendor_name = "Harbour View Venue"
storefront_url = "{pages}/hitched/challenge.htm"
allow_any_host = true
modes = ["storefront"]
poll_interval = 3600

[[platforms.marketplace.profiles]]
site = "bodas"
profile_id = "finca-olivos"
vendor_name = "Oak Barn Weddings"
storefront_url = "{pages}/bodas/finca-olivos.htm"
allow_any_host = true
modes = ["import"]
import_folder = "{root / "drop-bodas"}"
"""


def prepare_inputs(root: Path) -> None:
    notices = [
        StandInReview(
            review_id=f"mail{index}",
            author=f"Couple {index}",
            stars=5,
            text=f"A wonderful day, thank you ({index}).",
            created=1_700_000_000.0 + index * 86_400,
            updated=1_700_000_000.0 + index * 86_400,
        )
        for index in range(3)
    ]
    write_notifications(root / "mail", notices, vendor="Willow Barn", domain="www.hitched.co.uk")
    for name in ("drop", "drop-bodas"):
        (root / name).mkdir()
    dropped = root / "drop" / "export.csv"
    dropped.write_text(
        "author;rating;text;date\nAna & Luis;5;Perfect barn, perfect day;2025-05-01\n",
        encoding="utf-8",
    )
    os.utime(dropped, (LONG_AGO, LONG_AGO))


def hitched_ids(dirs: DaemonDirs) -> set[str]:
    rows = query(
        dirs.journal,
        "SELECT review_id FROM reviews WHERE platform = 'hitched' AND profile = 'willow-barn'",
    )
    return {row[0] for row in rows}


def health_of(dirs: DaemonDirs, platform: str, profile: str) -> dict[str, object]:
    result = ctl(dirs, "--json", "health")
    for row in json.loads(result.stdout)["subjects"]:
        if row["platform"] == platform and row["profile"] == profile:
            return dict(row)
    return {}


async def wait_for_degraded(dirs: DaemonDirs, platform: str, profile: str) -> dict[str, object]:
    """Poll ``ctl health`` until the profile is degraded, for up to 60 s.

    ``ctl`` runs in a thread because on the event loop it would stop the sandbox
    in this process from serving the daemon while it waits.
    """
    row: dict[str, object] = {}
    with trio.move_on_after(60):
        while True:
            row = await trio.to_thread.run_sync(health_of, dirs, platform, profile)
            if row.get("state") == "degraded":
                return row
            await trio.sleep(0.1)
    pytest.fail(f"timed out after 60 s waiting for {platform} {profile} to turn degraded: {row}")


async def test_daemon_marketplace_modes(tmp_path: Path) -> None:
    """Storefront, mailbox and import all reach the journal; challenge and verify show in health."""
    dirs = DaemonDirs(tmp_path)
    prepare_inputs(tmp_path)
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=11, script_seconds=2.0)
        dirs.write_config(base_url, sync_interval=1.0, extra=marketplace_table(base_url, tmp_path))
        process = await open_daemon(dirs)
        try:
            # Storefront (ids "hi..."), three e-mails and one dropped row; 60 s is generous.
            imported = tmp_path / "drop" / "imported" / "export.csv"
            ids = await wait_for(
                lambda: (
                    (found := hitched_ids(dirs))
                    and {"mail0", "mail1", "mail2"} <= found
                    and any(i.startswith("hi") for i in found)
                    and imported.exists()
                    and found
                ),
                timeout=60.0,
                what="storefront, mailbox and import reviews in the journal",
            )
            authors = query(dirs.journal, "SELECT author FROM reviews WHERE platform = 'hitched'")
            assert ("Ana & Luis",) in authors
            # Messages move out of new/ only after their reviews are committed.
            await wait_for(
                lambda: not list((tmp_path / "mail" / "new").iterdir()),
                timeout=60.0,
                what="the read messages moved out of new/",
            )
            assert len(ids) >= 5

            challenge = await wait_for_degraded(dirs, "hitched", "challenge")
            assert "bot challenge" in str(challenge["cause"])
            assert not query(dirs.journal, "SELECT 1 FROM reviews WHERE profile = 'challenge'")

            # In a thread: the sandbox serves from this process's event loop.
            verified = await trio.to_thread.run_sync(ctl, dirs, "verify", "willow-barn")
            assert verified.returncode == 0, verified.stderr
            assert "hitched willow-barn: verified" in verified.stdout

            mismatch = await trio.to_thread.run_sync(
                ctl, dirs, "--json", "verify", "bodas:finca-olivos"
            )
            assert mismatch.returncode == 0, mismatch.stderr
            result = json.loads(mismatch.stdout)
            assert result["state"] == "mismatch"
            assert "Oak Barn Weddings" in result["problems"][0]
            verify_row = await trio.to_thread.run_sync(
                health_of, dirs, "bodas", "finca-olivos/verify"
            )
            assert verify_row["state"] == "degraded"

            unknown = ctl(dirs, "verify", "no-such-profile")
            assert unknown.returncode == 1
            assert "no marketplace profile 'no-such-profile'" in unknown.stderr
        finally:
            code = await stop_daemon(process)
            nursery.cancel_scope.cancel()
    assert code == 0, dirs.log.read_text(encoding="utf-8")[-4000:]
