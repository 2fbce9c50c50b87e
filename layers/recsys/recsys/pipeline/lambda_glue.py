"""The one place Lambda concerns live: Powertools logging (run id as correlation id), metrics, tracing, event parsing.

Every pipeline handler is `step_handler(step, RequestModel)`: parse the event into the request model, call the
step with settings from the environment, return the result as JSON. Errors propagate: Lambda reports the
exception's class name as the error type, which the state machine's Retry/Catch match on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from pydantic import BaseModel

from recsys.settings import load_settings, metrics_namespace, powertools_service

Request = TypeVar("Request", bound=BaseModel)
Result = TypeVar("Result", bound=BaseModel)

# POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE win; these are the defaults.
logger = Logger(service=powertools_service("recsys-pipeline"))
metrics = Metrics(namespace=metrics_namespace(), service=powertools_service("recsys-pipeline"))
# X-Ray (the functions' Tracing: Active): a subsegment per handler, annotated with tenant, surface and step; boto3
# calls are patched in. Off outside Lambda. Responses are not captured: they can carry tenant data.
tracer = Tracer(service=powertools_service("recsys-pipeline"))


@dataclass(frozen=True)
class Gauge:
    """A metric with dimensions of its own (e.g. one manifest age per tenant/surface), published as is."""

    name: str
    value: float
    unit: MetricUnit = MetricUnit.NoUnit
    dimensions: dict[str, str] = field(default_factory=dict)


def _publish(gauge: Gauge) -> None:
    dimensions = {"service": metrics.service or "", **gauge.dimensions}  # the same service dimension as `metrics`
    with single_metric(gauge.name, gauge.unit, gauge.value, namespace=metrics.namespace, default_dimensions=dimensions):
        pass


def step_handler(
    step: Callable[[Request, Any], Result],
    request_model: type[Request],
    counts: Callable[[Result], dict[str, float]] | None = None,
    gauges: Callable[[Result], list[Gauge]] | None = None,
) -> Callable[[dict, Any], dict]:
    """A Lambda handler running `step`; `counts` picks the result's numbers to publish as CloudWatch metrics (with
    the run's tenant and surface), `gauges` metrics with dimensions of their own."""

    @tracer.capture_lambda_handler(capture_response=False)
    @logger.inject_lambda_context(correlation_id_path="run_id", clear_state=True)
    @metrics.log_metrics(raise_on_empty_metrics=False)
    def handler(event: dict, context: Any) -> dict:
        request = request_model.model_validate(event)
        tenant = getattr(request, "tenant", None) or getattr(getattr(request, "input", None), "tenant", None)
        surface = getattr(request, "surface", None) or getattr(getattr(request, "input", None), "surface", None)
        logger.append_keys(tenant=tenant, surface=surface)
        tracer.put_annotation("step", step.__name__)
        if tenant and surface:
            tracer.put_annotation("tenant", tenant)
            tracer.put_annotation("surface", surface)
        # Per-tenant dashboards and alarms. Locally (metrics disabled) handlers share this process's Metrics across
        # parallel Map iterations, so nothing is added where nothing is published: Powertools reads its own switch,
        # POWERTOOLS_METRICS_DISABLED, only when flushing, and flushes on its own (to stdout) once a metric holds
        # 100 values, which a local backfill's partials reach. It is read here only to follow it.
        publishing = os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() not in ("1", "true")
        if tenant and surface and publishing:
            metrics.add_dimension(name="tenant", value=tenant)
            metrics.add_dimension(name="surface", value=surface)
        logger.info("step started", extra={"step": step.__name__, "request": request.model_dump(mode="json")})
        result = step(request, load_settings())
        if publishing:
            for name, value in (counts(result) if counts else {}).items():
                metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
            for gauge in gauges(result) if gauges else []:
                _publish(gauge)
        logger.info("step finished", extra={"step": step.__name__})
        return result.model_dump(mode="json")

    return handler
