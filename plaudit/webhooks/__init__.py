"""Outbound webhooks: signed deliveries of journal events to vendors' endpoints.

- ``signing``: Standard Webhooks signatures (``whsec_`` secrets, rotation,
  timing-safe ``verify``).
- ``endpoints``: configured endpoints, their config checks and event filters.
- ``router``: the journal emit hook that enqueues one delivery job per
  endpoint in the event's own transaction.
- ``delivery``: the pure decision step (delivered, retry on the exact
  schedule, dead, disable the endpoint).
- ``ssrf``: the guard that resolves each target once and rejects internal
  addresses.
- ``records``: the attempt log and endpoint states in the journal, and the
  operator alert raised when an endpoint is disabled.
- ``batching``: group commit of successful attempts, many per journal write.
- ``clients``: keep-alive HTTP clients per endpoint, TLS trust (``ca_file``)
  and the sending of one attempt.
- ``control``, ``ctl`` and ``service``: operator commands and daemon wiring.

The actor that sends deliveries is :mod:`plaudit.actors.webhooks`.
"""
