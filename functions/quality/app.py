"""Quality gate: compare the candidate with the current manifest on the window's last day, held out."""

from recsys.pipeline.lambda_glue import step_handler
from recsys.pipeline.models import QualityRequest
from recsys.pipeline.steps import quality

handler = step_handler(quality, QualityRequest, lambda r: {"QualityGatePassed": int(r.passed)})
