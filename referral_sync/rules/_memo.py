"""Derived data cached on a frozen policy model, like ``functools.cached_property``.

Compiling a condition tree or indexing a territory table is a pure function of a frozen
pydantic model, so the result is kept on the model itself rather than in a module-level
cache (no global state, and it goes away with the policy). pydantic compares, hashes and
dumps only declared fields, so the cached entry is invisible to them. ``model_copy`` copies
the instance dict; the slot remembers its owner, so a copy recompiles instead of reusing a
stale result. Pickling drops the slot (closures do not pickle) and it is rebuilt on use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from pydantic import BaseModel

T = TypeVar("T")


class _Slot:
    __slots__ = ("owner", "value")

    def __init__(self, owner: object, value: object) -> None:
        self.owner = owner
        self.value = value

    def __reduce__(self) -> tuple[type[_Slot], tuple[None, None]]:
        return (_Slot, (None, None))

    def __deepcopy__(self, memo: dict[int, object]) -> _Slot:
        return _Slot(None, None)


def cached_on(model: BaseModel, key: str, build: Callable[[], T]) -> T:
    """``build()`` once per model instance, stored under ``key`` in the instance dict."""
    slot = model.__dict__.get(key)
    if isinstance(slot, _Slot) and slot.owner is model:
        return cast(T, slot.value)
    value = build()
    model.__dict__[key] = _Slot(model, value)
    return value
