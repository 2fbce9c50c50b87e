"""Token buckets per key, in memory per process (on Lambda: per instance), for the API's rate limits.

A bucket holds up to `burst` tokens and gains `rate` tokens a second; a request takes one, and a request that finds
less than one is refused with the seconds until the next token (the API answers 429 RECSYS_RATE_LIMIT_EXCEEDED
with that as Retry-After). Two limits use one `RateLimiter` (docs/reference/api.md#rate-limits):

  ("tenant", t)  every authenticated request of tenant t: the tenant config's `rate_limit`, else the
                 TENANT_RATE_LIMIT_* defaults of ServeSettings
  ("client", ip) every request to a path outside /v1 (health, version, docs), per source IP: the seed's per-IP bucket

The limiter holds at most `max_keys` buckets, so a flood of source addresses cannot grow it without bound: past
that, buckets that have refilled (forgetting them changes nothing) go first, then the least recently used.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True)
class Limit:
    """`rate` tokens a second (> 0) into a bucket of `burst` tokens (>= 1)."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not self.rate > 0 or self.burst < 1:
            raise ValueError(f"invalid rate limit: rate {self.rate} must be > 0 and burst {self.burst} >= 1")


def retry_after(wait: float) -> int:
    """Whole seconds for a Retry-After header: the wait rounded up, at least 1."""
    return max(1, math.ceil(wait))


class RateLimiter:
    """Thread-safe token buckets per key (see the module docstring). `clock` is monotonic seconds."""

    def __init__(self, *, clock: Clock = time.monotonic, max_keys: int = 10_000) -> None:
        self.clock = clock
        self.max_keys = max_keys
        # key -> [tokens, updated, rate, burst]; a list rather than an object: this runs on every request
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: Hashable, limit: Limit) -> float:
        """Take a token from `key`'s bucket: 0.0 if it had one, else the seconds until it will (> 0).

        A bucket follows the latest `limit` it is given (a tenant's config changed): its tokens are capped at the
        new burst."""
        with self._lock:
            now = self.clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_keys:
                    self._prune(now)
                bucket = self._buckets[key] = [float(limit.burst), now, limit.rate, limit.burst]
                tokens = float(limit.burst)
            else:
                self._buckets.move_to_end(key)
                tokens = min(float(limit.burst), bucket[0] + max(0.0, now - bucket[1]) * limit.rate)
                bucket[2], bucket[3] = limit.rate, limit.burst
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return 0.0
            bucket[0] = tokens
            return (1.0 - tokens) / limit.rate

    def _prune(self, now: float) -> None:
        """Down to 90% of max_keys (so a scan is paid once per max_keys / 10 new keys): full buckets first, then the
        least recently used. Lock held."""
        target = int(self.max_keys * 0.9)
        refilled = [
            key
            for key, (tokens, updated, rate, burst) in self._buckets.items()
            if tokens + (now - updated) * rate >= burst
        ]
        for key in refilled:
            if len(self._buckets) <= target:
                return
            del self._buckets[key]
        while len(self._buckets) > target:
            self._buckets.popitem(last=False)
