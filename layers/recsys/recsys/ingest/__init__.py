"""Ingest: raw JSONL of one UTC day -> one canonical Parquet partition + quarantine + report."""
