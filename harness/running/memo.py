"""A per-process cache bounded by the weight of what it holds, not only by a count.

``functools.lru_cache(maxsize=4096)`` is right for thousands of small cases, but a
case of 1,000,000 instructions takes about 170 MB parsed: 4096 of test_bpf's huge
programs would not fit in memory. :func:`weighted_cache` keeps the most recently
used entries whose weights (e.g. program slots) add up to at most a budget, and
always the newest one, whatever its weight.
"""
from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

Value = TypeVar("Value")


@dataclass
class CacheInfo:
    hits: int
    misses: int
    entries: int
    weight: int


class WeightedCache(Generic[Value]):
    """Least-recently-used memo of ``function``, held to ``max_weight`` and ``max_entries``."""

    def __init__(self, function: Callable[..., Value], weigh: Callable[[Value], int], max_weight: int,
                 max_entries: int) -> None:
        self._function, self._weigh = function, weigh
        self._max_weight, self._max_entries = max_weight, max_entries
        self._entries: OrderedDict[tuple[Any, ...], tuple[Value, int]] = OrderedDict()
        self._weight = self._hits = self._misses = 0
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any) -> Value:
        entry = self._entries.get(args)
        if entry is not None:
            self._hits += 1
            self._entries.move_to_end(args)
            return entry[0]
        self._misses += 1
        value = self._function(*args)
        weight = max(1, self._weigh(value))
        self._entries[args] = (value, weight)
        self._weight += weight
        while len(self._entries) > 1 and (self._weight > self._max_weight or len(self._entries) > self._max_entries):
            _, (_, dropped) = self._entries.popitem(last=False)
            self._weight -= dropped
        return value

    def cache_info(self) -> CacheInfo:
        return CacheInfo(self._hits, self._misses, len(self._entries), self._weight)

    def cache_clear(self) -> None:
        self._entries.clear()
        self._weight = self._hits = self._misses = 0


def weighted_cache(weigh: Callable[[Any], int], max_weight: int,
                   max_entries: int) -> Callable[[Callable[..., Value]], WeightedCache[Value]]:
    """Decorator: memoise a function of hashable positional arguments (see WeightedCache)."""
    def decorate(function: Callable[..., Value]) -> WeightedCache[Value]:
        return WeightedCache(function, weigh, max_weight, max_entries)
    return decorate
