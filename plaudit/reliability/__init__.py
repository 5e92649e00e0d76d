"""Keeping platform integrations working through faults.

- ``retry``: the retry policy of every outbound call (timeouts, backoff with
  full jitter, Retry-After, status classification).
- ``breaker``: circuit breakers that stop calls to a failing platform and
  probe it when the open interval ends.
- ``limiter``: token buckets that keep requests within platform quotas.
- ``health``: per-platform and per-profile health states, uptime and
  incidents, persisted in the journal.
"""
