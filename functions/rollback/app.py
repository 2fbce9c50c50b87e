"""Rollback (invoked by operators): move the current pointer back to an earlier manifest version by CAS."""

from recsys.pipeline.lambda_glue import step_handler
from recsys.pipeline.models import RollbackRequest
from recsys.pipeline.steps import rollback_pointer

handler = step_handler(rollback_pointer, RollbackRequest, lambda r: {"Rollbacks": 1})
