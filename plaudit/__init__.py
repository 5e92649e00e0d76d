"""Plaudit: a review-collection daemon for wedding vendors.

The subpackages follow the runtime:

- ``plaudit.daemon``: the supervisor tree, the ``plaudit run`` process, the
  control socket, metrics, systemd notification and signal handling.
- ``plaudit.actors``: long-lived workers; each is a pure decision step wrapped
  in a thin Trio shell that performs the I/O.
- ``plaudit.connectors``: clients for review platforms (HTTP, parsing,
  authentication), free of journal and supervision concerns.
- ``plaudit.config``: TOML configuration decoded into strict msgspec structs.
- ``plaudit.journal``: the durable SQLite job journal and its migrations.
- ``plaudit.reviews``: the normalised review model and its journal writes.
- ``plaudit.sandbox``: loopback stand-ins for the platforms, used by the demo
  and the tests.
"""

__version__ = "0.1.0"
