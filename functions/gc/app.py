"""GC (scheduled): delete unreferenced old artifacts and expired partials, canonical days and quarantine files."""

from recsys.pipeline.lambda_glue import step_handler
from recsys.pipeline.models import GcRequest
from recsys.pipeline.steps import collect_garbage

handler = step_handler(
    collect_garbage, GcRequest, lambda r: {"GcDeletedObjects": r.objects, "GcSkipped": len(r.skipped)}
)
