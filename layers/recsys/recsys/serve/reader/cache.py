"""The byte-budgeted LRU the reader keeps loaded artifacts (and implicit footers / row groups) in."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Protocol, TypeVar

from recsys.serve.observability import logger as log

DEFAULT_CACHE_BYTES = 512 * 1024 * 1024


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


V = TypeVar("V", bound=Sized)


class ArtifactCache:
    """Loaded artifacts (and implicit footers / row groups) by key, least recently used evicted past `max_bytes`.

    Values report their approximate memory as `nbytes`. A value larger than the whole budget is returned but not
    kept (`oversize` counts those). Concurrent `get_or_load` calls of one key load it once.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = int(max_bytes)
        self.hits = self.misses = self.evictions = self.oversize = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._loading: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def keys(self) -> list[Hashable]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._entries)

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            return self._lookup(key)

    def _lookup(self, key: Hashable) -> Any | None:
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found[0]

    def put(self, key: Hashable, value: Sized) -> bool:
        """Keep `value` (evicting others as needed); False if it is larger than the whole budget."""
        size = max(int(value.nbytes), 0)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                self.oversize += 1
                log.warning(
                    "artifact larger than the cache budget is not cached", extra={"key": str(key), "bytes": size}
                )
                return False
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                evicted, (_, evicted_size) = self._entries.popitem(last=False)
                self._bytes -= evicted_size
                self.evictions += 1
                log.info("artifact evicted from the cache", extra={"key": str(evicted), "bytes": evicted_size})
        return True

    def get_or_load(self, key: Hashable, load: Callable[[], V]) -> V:
        with self._lock:
            found = self._lookup(key)
            if found is not None:
                return found
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                found = self._lookup(key)
                if found is not None:
                    return found
                self.misses += 1
            try:
                value = load()
                self.put(key, value)
            finally:
                with self._lock:
                    if self._loading.get(key) is key_lock:
                        del self._loading[key]
        return value

    def invalidate_all(self) -> int:
        """Drop every entry; returns how many there were."""
        with self._lock:
            dropped = len(self._entries)
            self._entries.clear()
            self._bytes = 0
        return dropped

    def invalidate_uris(self, uris: Iterable[str]) -> int:
        """Drop the entries of these artifact URIs (whole artifacts and their parts); returns how many."""
        wanted = set(uris)
        with self._lock:
            keys = [key for key in self._entries if (key[0] if isinstance(key, tuple) else key) in wanted]
            for key in keys:
                self._bytes -= self._entries.pop(key)[1]
        return len(keys)
