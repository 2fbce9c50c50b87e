"""Publish: verify artifacts, write an immutable manifest version, move the current pointer by CAS; rollback."""
