"""Several controller processes, one PostgreSQL: gateways shared out by leases.

No hand-made consensus: PostgreSQL decides. A lease row (``gateway:<id>``, or
``leader``) names its owner and expires at a time set by the *database's* clock
(``now()``), so instances never compare clocks. One conditional upsert takes a
lease that is free, expired, or already ours, atomically; a lease held by a live
instance cannot be taken. Every ``renew_interval_s`` each instance:

1. heartbeats (``controller_instance``) and counts the live instances;
2. renews the leases it holds;
3. takes free or expired gateways up to its fair share, ceil(gateways / live);
4. hands back gateways beyond its share (after stopping their loops), so a new
   instance gets work;
5. keeps or takes the ``leader`` lease: the leader runs housekeeping and alert
   delivery.

An instance stops driving a gateway as soon as its lease might have expired
without a renewal it saw succeed (it keeps a local deadline of
``ttl - renew_interval`` after the last successful round), so two instances never
drive one gateway. When an instance dies, its leases expire after ``lease_ttl_s``
and the others take them at their next round: within ttl + interval (20 s by
default). Config changes reach every instance through PostgreSQL ``NOTIFY``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from controller.config.settings import ClusterSettings
from controller.store.db import Database

log = logging.getLogger(__name__)

LEADER = "leader"
CONFIG_CHANNEL = "streetlight_config"

_ACQUIRE = text(
    """
    INSERT INTO lease (name, owner, expires_at, acquired_at)
    VALUES (:name, :me, now() + make_interval(secs => :ttl), now())
    ON CONFLICT (name) DO UPDATE
        SET owner = EXCLUDED.owner,
            expires_at = EXCLUDED.expires_at,
            acquired_at = CASE WHEN lease.owner = EXCLUDED.owner
                               THEN lease.acquired_at ELSE now() END
        WHERE lease.owner = EXCLUDED.owner OR lease.expires_at < now()
    RETURNING owner
    """
)
_RENEW = text(
    "UPDATE lease SET expires_at = now() + make_interval(secs => :ttl) "
    "WHERE owner = :me AND expires_at >= now() RETURNING name"
)
_RELEASE = text("DELETE FROM lease WHERE name = :name AND owner = :me")
_HEARTBEAT = text(
    """
    INSERT INTO controller_instance (id, started_at, last_seen) VALUES (:me, now(), now())
    ON CONFLICT (id) DO UPDATE SET last_seen = now()
    """
)
_LIVE = text(
    "SELECT count(*) FROM controller_instance WHERE last_seen > now() - make_interval(secs => :ttl)"
)


def gateway_lease(gateway_id: int) -> str:
    return f"gateway:{gateway_id}"


def preference(instance_id: str, gateway_id: int) -> str:
    """A stable per-instance order of gateways, so instances reach for different ones."""
    return hashlib.sha256(f"{instance_id}/{gateway_id}".encode()).hexdigest()


def fair_share(gateways: int, live_instances: int) -> int:
    return math.ceil(gateways / max(1, live_instances))


class Cluster:
    """This instance's view of the leases; ``run()`` keeps them."""

    def __init__(
        self,
        db: Database,
        settings: ClusterSettings,
        *,
        on_release: Callable[[set[int]], Awaitable[None]],
        changed: asyncio.Event | None = None,
    ) -> None:
        """``on_release``: stop driving these gateways (awaited before their leases go);
        ``changed``: set whenever ``owned`` or ``leader`` changed."""
        self.db = db
        self.settings = settings
        self.me = settings.instance_id
        self.gateway_ids: set[int] = set()
        self.owned: set[int] = set()
        self.leader = False
        self.live_instances = 1
        self.changed = changed if changed is not None else asyncio.Event()
        self.rounds = 0
        self._round_wanted = asyncio.Event()
        self._on_release = on_release
        self._valid_until = 0.0

    def valid(self) -> bool:
        """Whether our leases are certainly still ours (a round succeeded recently enough)."""
        return time.monotonic() < self._valid_until

    def owns(self, gateway_id: int) -> bool:
        return gateway_id in self.owned and self.valid()

    def set_gateways(self, ids: Iterable[int]) -> None:
        """The gateways to share out; a change is acted on at once (a round now)."""
        ids = set(ids)
        if ids != self.gateway_ids:
            self.gateway_ids = ids
            self._round_wanted.set()

    async def run(self) -> None:
        failures = 0
        try:
            while True:
                started = time.monotonic()
                try:
                    await self._round(started)
                    failures = 0
                except (SQLAlchemyError, OSError) as exc:
                    failures += 1
                    if failures == 1:
                        log.warning("cluster: lease round failed: %s", exc)
                    if not self.valid() and (self.owned or self.leader):
                        log.warning("cluster: leases may have expired; stopping %d gateway(s)",
                                    len(self.owned))  # fmt: skip
                        lost = set(self.owned)
                        self.owned.clear()  # not driven from now on, even while they stop
                        await self._on_release(lost)
                        self.leader = False
                        self.changed.set()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.renew_interval_s):
                        await self._round_wanted.wait()
                self._round_wanted.clear()
        finally:
            await asyncio.shield(self.release_all())

    async def _round(self, started: float) -> None:
        ttl = self.settings.lease_ttl_s
        me = self.me
        previous = set(self.owned)
        async with self.db.engine.begin() as conn:
            await conn.execute(_HEARTBEAT, {"me": me})
            live = int((await conn.execute(_LIVE, {"ttl": ttl})).scalar_one())
            renewed = {str(r[0]) for r in await conn.execute(_RENEW, {"me": me, "ttl": ttl})}
        self.live_instances = live
        owned = {int(n.split(":", 1)[1]) for n in renewed if n.startswith("gateway:")}
        owned &= self.gateway_ids
        leader = LEADER in renewed
        share = fair_share(len(self.gateway_ids), live)
        if len(owned) < share:
            candidates = sorted(self.gateway_ids - owned, key=lambda g: preference(me, g))
            async with self.db.engine.begin() as conn:
                for gid in candidates:
                    if len(owned) >= share:
                        break
                    got = (
                        await conn.execute(
                            _ACQUIRE, {"name": gateway_lease(gid), "me": me, "ttl": ttl}
                        )
                    ).first()
                    if got is not None:
                        owned.add(gid)
        elif len(owned) > share:
            extra = set(sorted(owned, key=lambda g: preference(me, g))[share:])
            self.owned -= extra
            await self._on_release(extra)  # stop driving them first
            await self._release(gateway_lease(gid) for gid in extra)
            owned -= extra
        if not leader:
            async with self.db.engine.begin() as conn:
                leader = (
                    await conn.execute(_ACQUIRE, {"name": LEADER, "me": me, "ttl": ttl})
                ).first() is not None
        lost = self.owned - owned
        if lost:
            self.owned -= lost
            await self._on_release(lost)
        # gateways deleted or disabled: their leases would be renewed for ever
        await self._release(
            n
            for n in renewed
            if n.startswith("gateway:") and int(n.split(":", 1)[1]) not in self.gateway_ids
        )
        self._valid_until = started + ttl - self.settings.renew_interval_s
        if owned != previous or leader != self.leader:
            log.info(
                "cluster: %s drives %d of %d gateway(s) (%d live instance(s))%s",
                me, len(owned), len(self.gateway_ids), live, ", leader" if leader else "",
            )  # fmt: skip
            self.owned = owned
            self.leader = leader
            self.changed.set()
        self.rounds += 1

    async def _release(self, names: Iterable[str]) -> None:
        """Hand these leases back (only ours are deleted)."""
        names = list(names)
        if not names:
            return
        async with self.db.engine.begin() as conn:
            for name in names:
                await conn.execute(_RELEASE, {"name": name, "me": self.me})

    async def release_all(self) -> None:
        """Hand every lease back (clean shutdown): others take over at their next round."""
        if not self.owned and not self.leader:
            return
        try:
            async with self.db.engine.begin() as conn:
                await conn.execute(text("DELETE FROM lease WHERE owner = :me"), {"me": self.me})
                await conn.execute(
                    text("DELETE FROM controller_instance WHERE id = :me"), {"me": self.me}
                )
        except (SQLAlchemyError, OSError) as exc:
            log.warning("cluster: releasing leases failed (they will expire): %s", exc)
        self.owned.clear()
        self.leader = False


OVERRIDES_ONLY = "overrides"
"""NOTIFY payload: only overrides changed (an empty payload: anything may have)."""


async def notify_config_changed(db: Database, what: str = "") -> None:
    """Tell every instance to reload its configuration (PostgreSQL NOTIFY, payload ``what``)."""
    async with db.engine.begin() as conn:
        await conn.execute(
            text("SELECT pg_notify(:channel, :what)"), {"channel": CONFIG_CHANNEL, "what": what}
        )


async def listen_config_changes(db: Database, on_change: Callable[[str], None]) -> None:
    """Call ``on_change(payload)`` for every NOTIFY on the config channel, until cancelled."""
    while True:
        try:
            async with db.engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver = raw.driver_connection
                assert driver is not None

                def callback(_conn: object, _pid: object, _channel: object, what: str) -> None:
                    on_change(what)

                await driver.add_listener(CONFIG_CHANNEL, callback)
                try:
                    while True:  # keep the connection; a dead one raises here
                        await asyncio.sleep(30)
                        await conn.execute(text("SELECT 1"))
                finally:
                    await driver.remove_listener(CONFIG_CHANNEL, callback)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("cluster: config listener lost its connection: %s", exc)
            await asyncio.sleep(2)
