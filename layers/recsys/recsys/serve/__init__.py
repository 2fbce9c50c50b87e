"""Serve: the recommend API (FastAPI behind Mangum), reading the current manifest and its artifacts."""
