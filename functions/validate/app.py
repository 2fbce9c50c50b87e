"""Validate: the window's gates; raises GateFailed (caught by the state machine) when one fails."""

from recsys.pipeline.lambda_glue import step_handler
from recsys.pipeline.models import ValidateRequest
from recsys.pipeline.steps import validate

handler = step_handler(validate, ValidateRequest, lambda r: {"WindowEvents": r.events})
