"""TtlCache: the one TTL cache of the API (manifests, tenant config and rules, API keys).

A value lives as long as its loader says, so each user keeps its own policy in its loader: the manifest cache
serves the last good manifest for a few seconds when a refresh fails (stale-if-error), the tenant cache the last
read config, and the API keys simply let a StoreError propagate. What the cache itself guarantees:

- one load per key at a time: while one thread reloads an expired key, the others get the expired value instead
  of waiting; with nothing to return they wait for that load;
- an `invalidate` that lands while a load is in flight wins: that load's result is returned but not stored;
- past `max_entries`, expired entries are dropped first, then those `evictable` allows, oldest load first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Clock = Callable[[], float]


@dataclass(frozen=True)
class _Slot(Generic[V]):
    value: V
    expires: float


class TtlCache(Generic[K, V]):
    """Values per key, each until the time its loader gave it (see the module docstring)."""

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        max_entries: int | None = None,
        evictable: Callable[[V], bool] = lambda value: True,
    ) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self._evictable = evictable
        self._slots: dict[K, _Slot[V]] = {}
        self._key_locks: dict[K, threading.Lock] = {}
        self._epoch = 0  # bumped by invalidate: a load that started before it does not store its result
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._slots)

    def get(self, key: K, load: Callable[[V | None], tuple[V, float]]) -> V:
        """The key's value; when it is missing or expired, `load(expired value or None)` -> (value, seconds to keep
        it). An exception from `load` propagates and stores nothing."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None and self.clock() < slot.expires:
                return slot.value
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        if slot is not None:
            if not key_lock.acquire(blocking=False):
                return slot.value  # another thread is reloading it
        else:
            key_lock.acquire()
        try:
            with self._lock:
                slot = self._slots.get(key)
                epoch = self._epoch
            now = self.clock()
            if slot is not None and now < slot.expires:
                return slot.value
            value, seconds = load(slot.value if slot is not None else None)
            with self._lock:
                if epoch == self._epoch:
                    self._slots.pop(key, None)  # re-insert: dict order is then oldest load first
                    self._slots[key] = _Slot(value, now + seconds)
                    self._prune(now)
        finally:
            key_lock.release()
        return value

    def _prune(self, now: float) -> None:
        """Past `max_entries`, drop expired entries, then evictable ones, oldest load first. Lock held."""
        if self.max_entries is None or len(self._slots) <= self.max_entries:
            return
        for drop in (lambda slot: slot.expires <= now, lambda slot: self._evictable(slot.value)):
            for key in [k for k, slot in self._slots.items() if drop(slot)]:
                if len(self._slots) <= self.max_entries:
                    break
                del self._slots[key]
                lock = self._key_locks.get(key)
                if lock is not None and not lock.locked():
                    del self._key_locks[key]

    def invalidate(self, match: Callable[[K], bool]) -> int:
        """Forget the keys `match` selects (the next get loads them again). Returns how many were dropped."""
        with self._lock:
            self._epoch += 1
            keys = [key for key in self._slots if match(key)]
            for key in keys:
                del self._slots[key]
        return len(keys)

    def discard(self, key: K) -> bool:
        """Forget one key; True if it was cached."""
        with self._lock:
            self._epoch += 1
            return self._slots.pop(key, None) is not None
