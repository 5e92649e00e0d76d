"""``plaudit ctl reload`` with changed marketplace profiles, on a real daemon and the sandbox.

A changed mode or storefront URL reaches the running site actor at once; a
site added by the reload has no actor until a restart, and the reload reports that.
The daemon runs in real time: every wait states its timeout at the call.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import trio

from plaudit.sandbox.marketplace import PAGE_SIZE, write_notifications
from plaudit.sandbox.standin import StandInReview
from tests.support import DaemonDirs, ctl, open_daemon, query, start_sandbox, stop_daemon, wait_for

pytestmark = pytest.mark.slow


def marketplace_table(base_url: str, root: Path, *, storefront: str, extra: str = "") -> str:
    return f"""
[platforms.marketplace]
contact = "ops@example.com"
mailbox_interval = 0.5
allow_short_poll_interval = true
page_delay = 0.1

[[platforms.marketplace.profiles]]
site = "hitched"
profile_id = "willow-barn"
vendor_name = "Willow Barn"
storefront_url = "{base_url}/marketplace/hitched/{storefront}"
allow_any_host = true
maildir = "{root / "mail"}"
poll_interval = 1
{extra}
"""


def notices(root: Path) -> None:
    reviews = [
        StandInReview(
            review_id=f"mail{index}",
            author=f"Couple {index}",
            stars=5,
            text=f"Thank you for everything ({index}).",
            created=1_700_000_000.0 + index * 86_400,
            updated=1_700_000_000.0 + index * 86_400,
        )
        for index in range(2)
    ]
    write_notifications(root / "mail", reviews, vendor="Willow Barn", domain="www.hitched.co.uk")


def review_ids(dirs: DaemonDirs) -> set[str]:
    rows = query(dirs.journal, "SELECT review_id FROM reviews WHERE platform = 'hitched'")
    return {row[0] for row in rows}


def storefront_pages(dirs: DaemonDirs) -> list[int]:
    """Return the page counts the storefront syncs logged, oldest first."""
    text = dirs.log.read_text(encoding="utf-8")
    return [
        int(count) for count in re.findall(r"marketplace\.storefront_synced .*?pages=(\d+)", text)
    ]


async def test_reload_applies_mode_and_url(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    notices(tmp_path)
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=5, script_seconds=0.0)
        first = marketplace_table(base_url, tmp_path, storefront="willow-barn.htm")
        first += 'modes = ["storefront"]\n'
        dirs.write_config(base_url, sync_interval=1.0, extra=first)
        process = await open_daemon(dirs)
        try:
            # The storefront alone: its reviews arrive, the Maildir stays unread; 60 s is generous.
            await wait_for(
                lambda: any(review.startswith("hi") for review in review_ids(dirs)),
                timeout=60.0,
                what="the storefront's reviews",
            )
            assert list((tmp_path / "mail" / "new").iterdir())

            second = marketplace_table(base_url, tmp_path, storefront="paged/willow-barn.htm")
            second += 'modes = ["storefront", "mailbox"]\nmax_pages = 5\n'
            dirs.write_config(base_url, sync_interval=1.0, extra=second)
            reloaded = await trio.to_thread.run_sync(ctl, dirs, "--json", "reload")
            assert reloaded.returncode == 0, reloaded.stderr
            assert "platforms.marketplace" not in json.loads(reloaded.stdout)["restart_required"]

            # The new mode reads the Maildir and the new URL is paginated; 60 s is generous.
            await wait_for(
                lambda: {"mail0", "mail1"} <= review_ids(dirs),
                timeout=60.0,
                what="the mailbox mode added by the reload",
            )
            await wait_for(
                lambda: any(count > 1 for count in storefront_pages(dirs)),
                timeout=60.0,
                what="a storefront sync of the paginated URL",
            )
            # Messages move out of new/ only after their reviews are committed.
            await wait_for(
                lambda: not list((tmp_path / "mail" / "new").iterdir()),
                timeout=60.0,
                what="the read messages moved out of new/",
            )

            bodas = """
[[platforms.marketplace.profiles]]
site = "bodas"
profile_id = "finca-olivos"
vendor_name = "Finca Los Olivos"
modes = ["import"]
"""
            bodas += f'import_folder = "{tmp_path / "drop"}"\n'
            third = second + bodas
            dirs.write_config(base_url, sync_interval=1.0, extra=third)
            added = await trio.to_thread.run_sync(ctl, dirs, "--json", "reload")
            text = await trio.to_thread.run_sync(ctl, dirs, "reload")
        finally:
            code = await stop_daemon(process)
            nursery.cancel_scope.cancel()

    assert code == 0, dirs.log.read_text(encoding="utf-8")[-4000:]
    assert added.returncode == 0, added.stderr
    assert "platforms.marketplace" in json.loads(added.stdout)["restart_required"]
    assert "platforms.marketplace" in text.stdout
    assert max(storefront_pages(dirs)) == 6 // PAGE_SIZE
