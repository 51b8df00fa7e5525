"""The process's garbage-collector policy (queue_service.heap)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from queue_service import heap
from queue_service.domain.clock import ManualClock


@pytest.fixture
def clean_heap() -> Iterator[None]:
    gc.unfreeze()
    yield
    while heap._users:
        heap.release()
    gc.unfreeze()


def test_survivors_of_a_full_collection_are_frozen_while_the_policy_is_held(
    clean_heap: None,
) -> None:
    heap.hold()
    kept = [[i] for i in range(1000)]  # long-lived, GC-tracked objects
    frozen_before = gc.get_freeze_count()
    gc.collect()  # a full collection: its survivors go to the permanent generation
    assert gc.get_freeze_count() >= frozen_before + len(kept)
    heap.release()
    assert gc.get_freeze_count() == 0
    assert heap._freeze_after_full not in gc.callbacks


def test_nested_holders_keep_the_policy_until_the_last_releases(clean_heap: None) -> None:
    heap.hold()
    heap.hold()
    heap.release()
    assert heap._freeze_after_full in gc.callbacks
    heap.release()
    assert heap._freeze_after_full not in gc.callbacks
    heap.release()  # one release too many is harmless
    assert heap._users == 0


def test_renew_frees_cycles_that_died_while_frozen(clean_heap: None) -> None:
    heap.hold()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle, alive when frozen
    gc.freeze()
    alive = weakref.ref(a)
    del a, b
    gc.collect()
    assert alive() is not None  # garbage, but frozen: no collection reaches it
    heap.renew()
    assert alive() is None
    assert gc.get_freeze_count() > 0  # the survivors are frozen again


def test_young_collections_run_less_often_while_held_and_as_before_after(
    clean_heap: None,
) -> None:
    before = gc.get_threshold()
    heap.hold()
    held = gc.get_threshold()
    assert held[0] == max(heap.YOUNG_THRESHOLD, before[0])
    assert held[1:] == before[1:]
    heap.hold()  # a second holder changes nothing more
    assert gc.get_threshold() == held
    heap.release()
    assert gc.get_threshold() == held
    heap.release()
    assert gc.get_threshold() == before


async def test_the_policy_holds_from_a_good_replay_until_its_end(clean_heap: None) -> None:
    """`policy()`: the collector off during the replay, then held (survivors frozen, young
    collections rarer) until the policy ends; a replay that fails holds nothing."""
    before = gc.get_threshold()
    clock = ManualClock(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))
    async with heap.policy(clock, UTC) as failed:

        def replay_that_fails() -> None:
            with failed.replay():
                assert not gc.isenabled()
                raise RuntimeError("the store went away")

        with pytest.raises(RuntimeError):
            replay_that_fails()
        assert gc.isenabled()
        assert heap._users == 0
    async with heap.policy(clock, UTC) as policy:
        with policy.replay():
            assert not gc.isenabled()
        assert gc.isenabled()
        assert heap._users == 1
        assert gc.get_threshold()[0] == max(heap.YOUNG_THRESHOLD, before[0])
    assert heap._users == 0
    assert gc.get_threshold() == before
