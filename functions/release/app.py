"""Release: the run's last state, after success or failure; gives the tenant/surface run lease back."""

from recsys.pipeline.lambda_glue import step_handler
from recsys.pipeline.models import ReleaseRequest
from recsys.pipeline.steps import release_run

handler = step_handler(release_run, ReleaseRequest)
