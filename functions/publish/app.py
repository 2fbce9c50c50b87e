"""Publish: verify artifacts, store the manifest version, move the current pointer by CAS."""

from recsys.pipeline.lambda_glue import step_handler
from recsys.pipeline.models import PublishRequest
from recsys.pipeline.steps import publish_run

handler = step_handler(publish_run, PublishRequest, lambda r: {"PointerMoved": int(r.decision == "moved")})
