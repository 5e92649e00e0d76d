"""Loopback stand-ins for the review platforms, used by the demo and the tests.

- ``plaudit.sandbox.world``: the seeded world of locations, reviews and
  scripted events, with its ground truth.
- ``plaudit.sandbox.faults``: seeded fault injection (500s, 429s, latency,
  malformed bodies, repeated reviews).
- ``plaudit.sandbox.app``: the ASGI application with the platform routes and
  the ``/_sandbox`` control routes.
- ``plaudit.sandbox.server``: :func:`serve_sandbox` on loopback with
  Hypercorn's Trio worker, and ``plaudit sandbox`` (:func:`sandbox_main`).
- ``plaudit.sandbox.truth``: the truth document as Review records.
- ``plaudit.sandbox.facebook``, ``.trustpilot``, ``.yelp``: the API
  platform stand-ins, mounted by the app, on the seeded worlds of
  ``plaudit.sandbox.standin``; ``.standin_base`` holds what they share
  (fault and request-log routes, paging).
- ``plaudit.sandbox.request_steps``: reads request steps from a journal file
  for the demo's and the chaos run's figures.
"""

from plaudit.sandbox.app import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN
from plaudit.sandbox.faults import NO_FAULTS, FaultSettings
from plaudit.sandbox.server import (
    DEFAULT_PORT,
    SandboxError,
    SandboxOptions,
    loopback_address,
    sandbox_main,
    serve_sandbox,
)
from plaudit.sandbox.world import GoogleWorld, WorldOptions

__all__ = [
    "DEFAULT_PORT",
    "NO_FAULTS",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SANDBOX_REFRESH_TOKEN",
    "FaultSettings",
    "GoogleWorld",
    "SandboxError",
    "SandboxOptions",
    "WorldOptions",
    "loopback_address",
    "sandbox_main",
    "serve_sandbox",
]
