"""Validate: gates over a window's ingest reports. A failed gate stops the run before anything is published."""
