"""The sync and asyncio clients are twins: every public method of one exists in the other
with the same parameters (names, order, kinds, defaults), awaitable in the asyncio one."""

from __future__ import annotations

import inspect

import pytest

import landmark_client as sync
from landmark_client import aio

TWINS = [
    (sync.ExtractorClient, aio.ExtractorClient),
    (sync.SearchClient, aio.SearchClient),
    (sync.LandmarkClient, aio.LandmarkClient),
]


def methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def parameters(signature: inspect.Signature) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


@pytest.mark.parametrize("blocking, awaitable", TWINS, ids=lambda c: c.__name__)
def test_the_same_methods_with_the_same_parameters(blocking, awaitable):
    ours, theirs = methods(blocking), methods(awaitable)
    assert sorted(ours) == sorted(theirs), (
        f"only in the sync {blocking.__name__}: {sorted(set(ours) - set(theirs))}; "
        f"only in the asyncio one: {sorted(set(theirs) - set(ours))}"
    )
    for name, signature in ours.items():
        assert parameters(signature) == parameters(theirs[name]), f"{blocking.__name__}.{name}"


@pytest.mark.parametrize("blocking, awaitable", TWINS, ids=lambda c: c.__name__)
def test_every_asyncio_method_is_awaited_or_iterated(blocking, awaitable):
    for name in methods(awaitable):
        member = getattr(awaitable, name)
        assert inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member), name
    assert hasattr(awaitable, "__aenter__") and hasattr(blocking, "__enter__")


def test_a_method_missing_from_a_twin_is_named():
    class Lacking(aio.SearchClient):
        list_images = None  # type: ignore[assignment]

    with pytest.raises(AssertionError, match=r"only in the sync SearchClient: \['list_images'\]"):
        test_the_same_methods_with_the_same_parameters(sync.SearchClient, Lacking)
