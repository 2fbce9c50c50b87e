"""Freshness check (scheduled, independent of the pipeline): each target's served manifest age, as metrics.

ManifestAgeHours per tenant/surface; MaxManifestAgeHours (FreshnessAlarm holds it against the SLO; none is published
while nothing is, which the alarm treats as breaching); MissingManifests (targets never published) and StaleManifests.
"""

from recsys.pipeline.lambda_glue import Gauge, step_handler
from recsys.pipeline.models import FreshnessRequest
from recsys.pipeline.steps import freshness
from recsys.publish.freshness import Freshness

HOUR = 3600.0


def gauges(result: Freshness) -> list[Gauge]:
    ages = [
        Gauge("ManifestAgeHours", age.age_seconds / HOUR, dimensions={"tenant": age.tenant, "surface": age.surface})
        for age in result.targets
        if age.age_seconds is not None
    ]
    oldest = [] if result.max_age_seconds is None else [Gauge("MaxManifestAgeHours", result.max_age_seconds / HOUR)]
    return [*ages, *oldest, Gauge("MissingManifests", result.missing), Gauge("StaleManifests", result.stale)]


handler = step_handler(freshness, FreshnessRequest, gauges=gauges)
