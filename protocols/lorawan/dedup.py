"""Which uplinks are new: a de-duplicator by deduplication id and frame counter, without I/O.

Duplicates reach the bridge when the broker redelivers (QoS 1, a persistent
session after a reconnect), when two integrations publish the same event, or
when a node repeats a frame (same ``fCnt``) it thought was lost. The bridge feeds
every uplink to :meth:`UplinkDeduplicator.accept` and drops what it refuses.

Rules, per device:

* an id already seen (among the last ``capacity`` ids) is a duplicate;
* a frame counter equal to the last accepted one is a duplicate (a repeat);
* a lower counter is a counter reset (rejoin, ABP reboot): accepted, and it
  becomes the new last counter. A join (:meth:`reset`) forgets the counter.
"""

from __future__ import annotations

from collections import OrderedDict


class UplinkDeduplicator:
    """Remembers recent uplink ids (bounded) and each device's last frame counter."""

    def __init__(self, capacity: int = 65_536) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._ids: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._last_f_cnt: dict[str, int] = {}
        self.duplicates = 0
        self.counter_resets = 0

    def accept(self, device: str, dedup_id: str | None, f_cnt: int) -> bool:
        """``True`` if this uplink is new (and remember it), ``False`` for a duplicate."""
        if dedup_id is not None:
            key = (device, dedup_id)
            if key in self._ids:
                self._ids.move_to_end(key)
                self.duplicates += 1
                return False
        last = self._last_f_cnt.get(device)
        if last is not None and f_cnt == last:
            self.duplicates += 1
            return False
        if last is not None and f_cnt < last:
            self.counter_resets += 1
        self._last_f_cnt[device] = f_cnt
        if dedup_id is not None:
            self._ids[(device, dedup_id)] = None
            if len(self._ids) > self.capacity:
                self._ids.popitem(last=False)
        return True

    def reset(self, device: str) -> None:
        """The device (re)joined: its next frame counter starts again from 0."""
        self._last_f_cnt.pop(device, None)
