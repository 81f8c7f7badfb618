"""Answers kept for the last few keys: figures that cost a read of a whole set of rows, asked for
again and again (dashboards poll) while the set they depend on stays the same."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """The values of the `size` keys used last."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._values: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._values.get(key)
        if value is not None:
            self._values.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._values[key] = value
        self._values.move_to_end(key)
        while len(self._values) > self._size:
            self._values.popitem(last=False)


S = TypeVar("S")


class Lookup(Generic[S, K, V]):
    """A read's question "is the value for what I see already known?", answered from `recent`
    (the key made from what the read sees by `key_of`). Keeps the value it found: a concurrent
    call may evict it from `recent` right after."""

    def __init__(self, recent: Recent[K, V], key_of: Callable[[S], K]) -> None:
        self._recent = recent
        self._key_of = key_of
        self.value: V | None = None

    def __call__(self, seen: S) -> bool:
        self.value = self._recent.get(self._key_of(seen))
        return self.value is not None
