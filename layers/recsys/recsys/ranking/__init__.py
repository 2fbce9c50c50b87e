"""Ranking: candidates, scores, filters and selection over the signals a manifest serves. No I/O, no HTTP types."""
