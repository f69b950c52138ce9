"""Pausing the cyclic garbage collector while long-lived objects are built."""

from __future__ import annotations

import gc
import weakref

from backfill_ctl.spec.collector import collector_paused


def _in_generation(obj: object, generation: int) -> bool:
    return any(o is obj for o in gc.get_objects(generation=generation))


def test_the_collector_is_paused_and_what_was_built_goes_to_the_oldest_generation() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        built = [[n] for n in range(3)]
        assert _in_generation(built, 0)

    assert gc.isenabled()
    assert _in_generation(built, 2)
    assert all(_in_generation(item, 2) for item in built)


class _Node:
    other: _Node | None = None


def test_a_cycle_made_while_paused_is_still_collected() -> None:
    with collector_paused():
        node = _Node()
        node.other = node
        ref = weakref.ref(node)
        del node

    assert ref() is not None  # a cycle: reference counting alone does not free it
    gc.collect()
    assert ref() is None


def test_a_collector_disabled_by_someone_else_stays_disabled() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
