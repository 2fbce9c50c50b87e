"""Ingest: one UTC day of raw JSONL -> canonical Parquet partition, quarantine file and counts."""

from recsys.pipeline.lambda_glue import step_handler
from recsys.pipeline.models import IngestRequest
from recsys.pipeline.steps import ingest

handler = step_handler(
    ingest,
    IngestRequest,
    lambda r: {
        "LinesRead": r.read,
        "EventsAccepted": r.accepted,
        "EventsQuarantined": r.quarantined,
        "EventsDuplicate": r.duplicates,
    },
)
