"""settle_heap: old cyclic garbage is collected, survivors are frozen out of later GC passes."""

from __future__ import annotations

import gc
import weakref

from controller.loop.runtime import settle_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_settle_heap_collects_then_freezes() -> None:
    gc.disable()
    try:
        garbage = Node()
        dead = weakref.ref(garbage)
        del garbage
        kept = Node()
        assert dead() is not None  # a cycle outlives its last name without the collector
        settle_heap()
        assert dead() is None
        assert gc.get_freeze_count() > 0
        again = Node()
        dead_again = weakref.ref(again)
        del again
        settle_heap()  # the next call unfreezes and collects first, then freezes again
        assert dead_again() is None
        assert gc.get_freeze_count() > 0
        assert kept.me is kept
    finally:
        gc.unfreeze()
        gc.enable()
