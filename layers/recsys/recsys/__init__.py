"""recsys: the shared library behind every Lambda, the local runner and the `recsys` CLI.

The data flow is visible in the sub-packages: ingest -> validate -> compute -> publish (-> serve).
Domain modules (events, compute kinds, manifest rules, gates) import nothing from AWS; storage goes
through `recsys.store.ObjectStore`.
"""

__version__ = "0.1.0"
