"""Inbound webhooks: provider events verified on the raw body and kept in a durable inbox.

- ``verify`` and ``sns``: signature checks, pure functions of the request.
- ``mapping``: the inbound event type; ``email_events``, ``ses_events`` and
  ``sms_push_events`` map provider bodies to it; ``events`` dispatches by provider.
- ``providers``: credentials read from files and the check of each provider.
- ``inbox``: the ``inbound_events`` table and the ``inbound.process`` job.
- ``server``: the HTTP listener that verifies, stores, then responds 2xx.
- ``service``: wiring into the daemon; ``inspect``: ``plaudit inspect webhook``.
- ``testing``: signing counterparts for tests and the benchmark.
"""
