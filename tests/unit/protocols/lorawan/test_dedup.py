"""The uplink de-duplicator: ids, repeated frame counters, resets and joins."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocols.lorawan.dedup import UplinkDeduplicator


def test_a_redelivered_uplink_is_dropped() -> None:
    dedup = UplinkDeduplicator()
    assert dedup.accept("eui", "id-1", 5)
    assert not dedup.accept("eui", "id-1", 5)
    assert dedup.duplicates == 1


def test_a_repeated_frame_counter_is_dropped_even_with_a_new_id() -> None:
    dedup = UplinkDeduplicator()
    assert dedup.accept("eui", "id-1", 5)
    assert not dedup.accept("eui", "id-2", 5)
    assert dedup.accept("eui", "id-3", 6)


def test_devices_are_independent() -> None:
    dedup = UplinkDeduplicator()
    assert dedup.accept("a", "id-1", 5)
    assert dedup.accept("b", "id-1", 5)


def test_a_lower_counter_is_a_reset_and_is_accepted() -> None:
    dedup = UplinkDeduplicator()
    assert dedup.accept("eui", "id-1", 900)
    assert dedup.accept("eui", "id-2", 0)
    assert dedup.counter_resets == 1
    assert not dedup.accept("eui", "id-3", 0)


def test_a_join_forgets_the_counter() -> None:
    dedup = UplinkDeduplicator()
    assert dedup.accept("eui", None, 0)
    dedup.reset("eui")
    assert dedup.accept("eui", None, 0)


def test_ids_are_remembered_up_to_the_capacity() -> None:
    dedup = UplinkDeduplicator(capacity=2)
    for f_cnt, uid in enumerate(["a", "b", "c"]):
        assert dedup.accept("eui", uid, f_cnt)
    dedup.reset("eui")
    assert dedup.accept("eui", "a", 10)  # forgotten: the oldest of three with room for two
    assert not dedup.accept("eui", "c", 11)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 20)), max_size=60))
def test_every_uplink_is_accepted_at_most_once(uplinks: list[tuple[str, int]]) -> None:
    dedup = UplinkDeduplicator()
    accepted = [(d, f) for d, f in uplinks if dedup.accept(d, f"{d}-{f}", f)]
    assert len(accepted) == len(set(accepted))
    assert len(accepted) + dedup.duplicates == len(uplinks)
