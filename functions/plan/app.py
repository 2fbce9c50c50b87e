"""Plan: resolve the run's window (yesterday, UTC, when the schedule gives none), days and kinds."""

from recsys.pipeline.lambda_glue import step_handler
from recsys.pipeline.models import PlanRequest
from recsys.pipeline.steps import plan

handler = step_handler(plan, PlanRequest, lambda p: {"DaysPlanned": len(p.days)})
