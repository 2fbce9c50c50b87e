"""TtlCache: what the manifest cache, the tenant config cache and the API keys share (their tests cover the rest)."""

from __future__ import annotations

from recsys.serve.ttl_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_value_lives_as_long_as_its_loader_says_and_the_loader_sees_the_expired_one() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(clock=clock)
    seen: list[int | None] = []

    def load(previous: int | None) -> tuple[int, float]:
        seen.append(previous)
        return (previous or 0) + 1, 10.0

    assert cache.get("k", load) == 1
    clock.now = 9.9
    assert cache.get("k", load) == 1
    clock.now = 10.0
    assert cache.get("k", load) == 2 and seen == [None, 1]


def test_past_max_entries_expired_then_evictable_entries_go_oldest_first() -> None:
    clock = Clock()
    cache: TtlCache[str, str] = TtlCache(clock=clock, max_entries=2, evictable=lambda value: value != "keep")
    cache.get("a", lambda _: ("keep", 100.0))
    cache.get("b", lambda _: ("miss", 1.0))
    clock.now = 1.0
    cache.get("c", lambda _: ("miss", 100.0))
    assert len(cache) == 2 and cache.get("a", lambda _: ("reloaded", 1.0)) == "keep"  # b (expired) went
    cache.get("d", lambda _: ("miss", 100.0))
    assert cache.get("a", lambda _: ("reloaded", 1.0)) == "keep"  # c (a miss, oldest) went, not the kept one


def test_a_discard_during_a_load_wins() -> None:
    cache: TtlCache[str, int] = TtlCache()

    def load(previous: int | None) -> tuple[int, float]:
        cache.discard("k")  # lands while this load is in flight
        return 1, 60.0

    assert cache.get("k", load) == 1 and len(cache) == 0
