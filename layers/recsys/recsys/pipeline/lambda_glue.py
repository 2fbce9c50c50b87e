"""The one place Lambda concerns live: Powertools logging (run id as correlation id), metrics, event parsing.

Every pipeline handler is `step_handler(step, RequestModel)`: parse the event into the request model, call the
step with settings from the environment, return the result as JSON. Errors propagate: Lambda reports the
exception's class name as the error type, which the state machine's Retry/Catch match on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel

from recsys.settings import load_settings

Request = TypeVar("Request", bound=BaseModel)
Result = TypeVar("Result", bound=BaseModel)

logger = Logger(service="recsys-pipeline")
metrics = Metrics(namespace="Recsys", service="recsys-pipeline")


def step_handler(
    step: Callable[[Request, Any], Result],
    request_model: type[Request],
    counts: Callable[[Result], dict[str, float]] | None = None,
) -> Callable[[dict, Any], dict]:
    """A Lambda handler running `step`; `counts` picks the result's numbers to publish as CloudWatch metrics."""

    @logger.inject_lambda_context(correlation_id_path="run_id", clear_state=True)
    @metrics.log_metrics(raise_on_empty_metrics=False)
    def handler(event: dict, context: Any) -> dict:
        request = request_model.model_validate(event)
        tenant = getattr(request, "tenant", None) or getattr(getattr(request, "input", None), "tenant", None)
        surface = getattr(request, "surface", None) or getattr(getattr(request, "input", None), "surface", None)
        logger.append_keys(tenant=tenant, surface=surface)
        # Per-tenant dashboards and alarms. Locally (metrics disabled) handlers share this process's Metrics across
        # parallel Map iterations, so dimensions are only set where they are published. POWERTOOLS_METRICS_DISABLED
        # is Powertools' own switch (it reads it when flushing): it is read here only to follow it, not configuration.
        if tenant and surface and os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() not in ("1", "true"):
            metrics.add_dimension(name="tenant", value=tenant)
            metrics.add_dimension(name="surface", value=surface)
        logger.info("step started", extra={"step": step.__name__, "request": request.model_dump(mode="json")})
        result = step(request, load_settings())
        for name, value in (counts(result) if counts else {}).items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        logger.info("step finished", extra={"step": step.__name__})
        return result.model_dump(mode="json")

    return handler
