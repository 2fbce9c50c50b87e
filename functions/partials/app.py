"""Partials: one ingested day's per-day partial of one event kind (a BuildPartials Map iteration)."""

from recsys.pipeline.lambda_glue import step_handler
from recsys.pipeline.models import PartialRequest
from recsys.pipeline.steps import partial

handler = step_handler(partial, PartialRequest, lambda r: {"PartialsBuilt": int(r.built)})
