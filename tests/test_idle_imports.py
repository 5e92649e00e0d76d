"""The daemon's start-up imports: libraries of optional features load only when used.

Each library below costs the idle daemon several megabytes of resident
memory, and the target of ``idle_rss_mb`` in ``bench/journal.py`` is 60 MB.  A fresh
interpreter imports the daemon and the feature's module, and the library
must still be absent from ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Imported by ``plaudit run`` whatever the configuration enables.
DAEMON_MODULES = (
    "plaudit.daemon.app",
    "plaudit.daemon.commands",
    "plaudit.messaging.push",
    "plaudit.inbound.service",
)
# Signature and encryption libraries that only web push and the inbound
# signature checks use.
OPTIONAL_LIBRARIES = ("py_vapid", "http_ece", "jwt", "cryptography")


def loaded_modules(imports: tuple[str, ...]) -> set[str]:
    """Import ``imports`` in a fresh interpreter and return the names in its sys.modules."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {list(imports)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(result.stdout))


@pytest.fixture(scope="module")
def daemon_modules() -> set[str]:
    return loaded_modules(DAEMON_MODULES)


@pytest.mark.parametrize("library", OPTIONAL_LIBRARIES)
def test_daemon_import_skips_library(library: str, daemon_modules: set[str]) -> None:
    assert library not in daemon_modules


def test_push_key_loads_library() -> None:
    # The lazy import still happens when the feature runs.
    script = (
        "import sys\n"
        "from plaudit.messaging.push import b64url_decode, vapid_public_key\n"
        "import py_vapid\n"
        "key = py_vapid.Vapid02()\n"
        "key.generate_keys()\n"
        "assert len(b64url_decode(vapid_public_key(key))) == 65\n"
        "print('cryptography' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "True"
