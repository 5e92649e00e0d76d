"""The example configuration: loopback-only URLs, and a clean start in a fresh state directory."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio

from plaudit.config import load_config
from plaudit.config.paths import create_state_folders, resolve_state_folders
from tests.support import (
    DaemonDirs,
    ctl,
    open_daemon,
    query,
    start_sandbox,
    stop_daemon,
    wait_for,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "plaudit.example.toml"
LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}
MARKETPLACE_KINDS = ("hitched.mailbox", "hitched.import", "hitched.storefront")


def strings_in(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield (key path, string) for every string in a parsed TOML document."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings_in(item, f"{path}[{index}]")


def test_example_urls_all_loopback() -> None:
    document = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    urls = [(path, text) for path, text in strings_in(document) if "://" in text]

    assert urls, "the example config has no active URL, so this test checks nothing"
    for path, url in urls:
        assert urlsplit(url).hostname in LOOPBACK_HOSTS, f"{path} = {url!r} is not on loopback"


def test_example_real_sites_only_in_comments() -> None:
    for number, line in enumerate(EXAMPLE.read_text(encoding="utf-8").splitlines(), start=1):
        active = line.split("#", 1)[0]
        for host in re.findall(r"://\[?([^/:\]\"]+)", active):
            assert host in LOOPBACK_HOSTS, f"line {number}: {line.strip()}"


def test_example_folders_follow_state_dir(tmp_path: Path) -> None:
    config = resolve_state_folders(load_config(EXAMPLE), tmp_path)
    assert config.platforms.marketplace is not None
    profile = config.platforms.marketplace.profiles[0]

    created = create_state_folders(config, tmp_path)

    assert profile.maildir == str(tmp_path / "mail" / "hitched-willow-barn")
    assert profile.import_folder == str(tmp_path / "import" / "hitched-willow-barn")
    for part in ("new", "cur", "tmp"):
        assert (tmp_path / "mail" / "hitched-willow-barn" / part).is_dir()
    assert (tmp_path / "import" / "hitched-willow-barn").is_dir()
    assert len(created) == 4
    assert create_state_folders(config, tmp_path) == []


def dead_jobs(dirs: DaemonDirs) -> list[tuple[Any, ...]]:
    return query(dirs.journal, "SELECT kind, last_error FROM jobs WHERE state = 'dead'")


def marketplace_kinds_done(dirs: DaemonDirs) -> bool:
    rows = query(dirs.journal, "SELECT DISTINCT kind FROM jobs WHERE state = 'succeeded'")
    done = {row[0] for row in rows}
    return all(kind in done for kind in MARKETPLACE_KINDS)


@pytest.mark.slow
async def test_example_starts_clean_in_fresh_state_dir(tmp_path: Path) -> None:
    """Against the sandbox, a first run of the example has no dead job and no degraded platform."""
    dirs = DaemonDirs(tmp_path)
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery)
        text = EXAMPLE.read_text(encoding="utf-8").replace("http://127.0.0.1:8931", base_url)
        # Port 0 keeps the test clear of whatever else listens on the documented ports.
        # [smtp] keeps 587, because 0 is no port to connect to and no couple is
        # imported, so nothing connects to it.
        dirs.config.write_text(
            re.sub(r"(?m)^port = (?!587$)\d+$", "port = 0", text), encoding="utf-8"
        )
        process = await open_daemon(dirs)
        try:
            # Generous: the machine running the suite may be busy.
            await wait_for(
                lambda: marketplace_kinds_done(dirs), timeout=90, what="marketplace jobs"
            )
            result = await trio.to_thread.run_sync(ctl, dirs, "--json", "health")
        finally:
            assert await stop_daemon(process) == 0
        nursery.cancel_scope.cancel()

    assert dead_jobs(dirs) == []
    assert result.returncode == 0, result.stderr
    subjects = json.loads(result.stdout)["subjects"]
    unhealthy = [row for row in subjects if row["state"] not in ("healthy", "unknown")]
    assert unhealthy == []
    assert (dirs.state / "mail" / "hitched-willow-barn" / "new").is_dir()
    assert (dirs.state / "import" / "hitched-willow-barn").is_dir()
