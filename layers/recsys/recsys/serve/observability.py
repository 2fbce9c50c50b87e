"""The API's logs and metrics: one Powertools Logger (JSON lines) for every serve module, keyed per request.

Each request's lines carry its `request_id` (X-Request-Id, echoed or generated) and, once the caller is resolved, its
`tenant`. The keys live in a context variable (Powertools' thread-safe keys), so concurrent requests under uvicorn
do not mix them, and the worker threads FastAPI runs operations in inherit them. The service name is
POWERTOOLS_SERVICE_NAME (default "recsys-api"), the metrics namespace POWERTOOLS_METRICS_NAMESPACE (default "Recsys").
"""

from __future__ import annotations

import sys

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from recsys.settings import metrics_namespace, powertools_service

SERVICE = "recsys-api"

# stderr: Lambda keeps both streams, and a process that serves in-process (the `recsys` CLI) prints its answers on
# stdout.
logger = Logger(service=powertools_service(SERVICE), stream=sys.stderr)


def start_request(request_id: str) -> None:
    """A new request: its id on every line from here on; the previous request's tenant forgotten."""
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(request_id=request_id)


def set_tenant(tenant: str) -> None:
    """The resolved caller's tenant on the request's lines."""
    logger.thread_safe_append_keys(tenant=tenant)


def count(name: str, tenant: str | None = None) -> None:
    """One CloudWatch metric datapoint (EMF), with a tenant dimension when given.

    EphemeralMetrics, not single_metric: single_metric prints its EMF line even with POWERTOOLS_METRICS_DISABLED,
    and a Metrics instance would share its pending metrics with the pipeline's handlers in one process."""
    metrics = EphemeralMetrics(namespace=metrics_namespace())
    if tenant:
        metrics.add_dimension(name="tenant", value=tenant)
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()
