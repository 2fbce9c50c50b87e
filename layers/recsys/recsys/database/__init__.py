"""Postgres: connections (settings, Secrets Manager credentials, reuse), the shipped migrations, and the mapping
between artifact tables and their Postgres tables. The event source (recsys.ingest.postgres), the signal store's
writer (recsys.publish.signal_store) and the API's reader (recsys.serve.reader.database) build on it."""
