"""Compute: one artifact kind over the window, from reusable per-day partials."""

from recsys.pipeline.lambda_glue import step_handler
from recsys.pipeline.models import ComputeRequest
from recsys.pipeline.steps import compute

handler = step_handler(
    compute,
    ComputeRequest,
    lambda r: {"ArtifactRows": r.artifact.rows, "PartialsBuilt": r.partials_built, "PartialsReused": r.partials_reused},
)
