"""Push the NGSI-LD entities to the city's IOC: a context broker and/or MQTT (docs/ioc.md, Push).

How it works, in three loops under :meth:`NgsiPublisher.run`:

* **scan** (every ``ioc.debounce_s``): builds every entity the pull API serves
  (:func:`controller.export.ngsi.list_entities`: ``Streetlight``, ``StreetlightGroup``,
  ``StreetlightModel``; there are no cabinets or feeders in the inventory yet) and compares
  each with the outbox (``ngsi_outbox``, one row per entity id). A changed entity's row gets
  the new content (newest wins: however many changes, one pending row); an entity that is no
  longer exported gets ``body = None`` (a deletion). Every ``ioc.full_refresh_s`` every row
  is marked pending for the broker again.
* **broker** (when ``ioc.ngsi_ld_url`` is set): sends the pending rows in batches of at most
  ``ioc.batch_size`` (<= 100) with ``POST /ngsi-ld/v1/entityOperations/upsert`` (deletions
  with ``.../entityOperations/delete``). 201/204: the batch is done; 207: the ``success`` ids
  are done, the others are retried alone with a back-off per entity. An outage (no
  connection, timeout, 5xx, 401/403/404/429) stops sending and retries with a back-off that
  doubles up to ``ioc.retry_max_s``: nothing is lost (the rows stay pending) and nothing
  floods (one request per back-off while it is down, then the pending rows, in batches).
* **mqtt** (when ``ioc.mqtt`` is on): publishes each pending entity, retained, QoS 1, on
  ``{mqtt.prefix}/ngsi/{type}/{id}`` (the normalized entity without ``@context``; a
  deletion publishes an empty retained message, which clears the topic).

In a cluster only the leader scans and sends (``leadership``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
from sqlalchemy import delete, or_, update
from sqlmodel import col, select

from controller.alerts.ports import Leadership, SoleInstance
from controller.config.settings import Settings
from controller.core.errors import GatewayUnavailable
from controller.export.ngsi import CORE_CONTEXT, Entity, EntityType, LiveLookup, list_entities
from controller.store.db import Database
from controller.store.tables import NgsiOutbox

log = logging.getLogger(__name__)

UPSERT_PATH = "/ngsi-ld/v1/entityOperations/upsert"
DELETE_PATH = "/ngsi-ld/v1/entityOperations/delete"
PUSHED_TYPES = (EntityType.STREETLIGHT, EntityType.GROUP, EntityType.MODEL)
"""What is pushed: every type the pull API has entities of (no cabinets in the inventory)."""
GONE = "gone"
"""``digest`` of a row whose entity is no longer exported (its deletion is pending)."""
PAGE = 1000
"""Entities read per query while scanning."""
OUTAGE_STATUSES = frozenset({401, 403, 404, 408, 429})
"""Answers that say the broker (or our access to it) is unavailable, not that an entity is
wrong: the whole push waits and retries (besides every 5xx)."""


class MqttPublisher(Protocol):
    """Publishes on the controller's MQTT link (``protocols.mqtt.MqttLink``); raises
    :class:`GatewayUnavailable` when it cannot now."""

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None: ...


class BrokerUnavailable(GatewayUnavailable):
    """The context broker cannot take anything now (an outage, not a bad entity)."""


def digest(entity: Entity) -> str:
    text = json.dumps(entity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def mqtt_topic(prefix: str, entity_type: str, entity_id: str) -> str:
    """``{prefix}/ngsi/{type}/{id}`` (ids are URNs: no ``/``, ``+`` or ``#`` in them)."""
    return f"{prefix}/ngsi/{entity_type}/{entity_id}"


@dataclass(frozen=True, slots=True)
class Pending:
    entity_id: str
    entity_type: str
    body: Entity | None
    digest: str
    attempts: int


@dataclass(slots=True)
class PublisherStats:
    scans: int = 0
    queued: int = 0
    """Entity changes written to the outbox (coalesced ones count once per scan)."""
    requests: int = 0
    sent: int = 0
    failed: int = 0
    outages: int = 0
    mqtt_published: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


class NgsiPublisher:
    """The IOC push; :meth:`run` until cancelled (returns at once when ``[ioc]`` is off)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        live: LiveLookup | None = None,
        mqtt: Callable[[], MqttPublisher | None] | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.settings = settings
        self.ioc = settings.ioc
        self.db = db
        self.live = live
        self.mqtt = mqtt
        self.leadership: Leadership = leadership or SoleInstance()
        self.stats = PublisherStats()
        self._broker_wanted = asyncio.Event()
        self._mqtt_wanted = asyncio.Event()

    # -- running -----------------------------------------------------------------------

    async def run(self) -> None:
        if not self.ioc.enabled:
            return
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._scan_loop(), name="ngsi-scan")
            if self.ioc.ngsi_ld_url is not None:
                tg.create_task(self._broker_loop(), name="ngsi-broker")
            if self.ioc.mqtt and self.mqtt is not None:
                tg.create_task(self._mqtt_loop(), name="ngsi-mqtt")

    async def _scan_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_full = loop.time() + self.ioc.full_refresh_s
        while True:
            if self.leadership.leader:
                full = loop.time() >= next_full
                try:
                    await self.scan(full=full)
                except Exception:  # the next scan tries again; the outbox keeps what it had
                    log.exception("NGSI-LD: scanning the entities failed")
                else:
                    if full:
                        next_full = loop.time() + self.ioc.full_refresh_s
            await asyncio.sleep(self.ioc.debounce_s)

    # -- scan: entities -> outbox --------------------------------------------------------

    async def collect(self) -> dict[str, Entity]:
        """Every entity pushed, by id, as the pull API builds it."""
        out: dict[str, Entity] = {}
        async with self.db.sessions() as session:
            for entity_type in PUSHED_TYPES:
                offset = 0
                while True:
                    page, total = await list_entities(
                        session=session, site=self.settings.site, entity_type=entity_type,
                        limit=PAGE, offset=offset, live=self.live,
                    )  # fmt: skip
                    for entity in page:
                        out[entity["id"]] = entity
                    offset += PAGE
                    if not page or offset >= total:
                        break
        return out

    async def scan(self, *, full: bool = False) -> int:
        """Write changed (and gone) entities to the outbox; returns how many rows changed.

        ``full``: every entity is pending for the broker again (the periodic full refresh).
        """
        entities = await self.collect()
        now = _now()
        changed = 0
        async with self.db.sessions() as session:
            known = dict(
                (await session.exec(select(NgsiOutbox.entity_id, NgsiOutbox.digest))).all()
            )
            for eid, entity in entities.items():
                d = digest(entity)
                old = known.get(eid)
                if old == d:
                    continue
                changed += 1
                if old is None:
                    session.add(
                        NgsiOutbox(entity_id=eid, entity_type=entity["type"], body=entity,
                                   digest=d, changed_at=now)
                    )  # fmt: skip
                else:
                    await session.exec(
                        update(NgsiOutbox)
                        .where(col(NgsiOutbox.entity_id) == eid)
                        .values(body=entity, digest=d, attempts=0, next_attempt_at=None,
                                last_error=None, changed_at=now)
                    )  # fmt: skip
            for eid in known.keys() - entities.keys():
                if known[eid] != GONE:
                    changed += 1
                    await session.exec(
                        update(NgsiOutbox)
                        .where(col(NgsiOutbox.entity_id) == eid)
                        .values(body=None, digest=GONE, attempts=0, next_attempt_at=None,
                                last_error=None, changed_at=now)
                    )  # fmt: skip
            if full:
                await session.exec(
                    update(NgsiOutbox)
                    .where(col(NgsiOutbox.body).is_not(None))
                    .values(broker_digest=None)
                )
            await session.exec(delete(NgsiOutbox).where(*self._all_delivered_gone()))
            await session.commit()
        self.stats.scans += 1
        self.stats.queued += changed
        if changed or full:
            self._broker_wanted.set()
            self._mqtt_wanted.set()
        return changed

    def _all_delivered_gone(self) -> list[Any]:
        """Rows of deleted entities that every configured channel has deleted."""
        conditions: list[Any] = [col(NgsiOutbox.digest) == GONE]
        if self.ioc.ngsi_ld_url is not None:
            conditions.append(col(NgsiOutbox.broker_digest) == GONE)
        if self.ioc.mqtt and self.mqtt is not None:
            conditions.append(col(NgsiOutbox.mqtt_digest) == GONE)
        return conditions

    async def _due(self, channel: Any, *, limit: int, per_entity_backoff: bool) -> list[Pending]:
        async with self.db.sessions() as session:
            stmt = select(NgsiOutbox).where(
                or_(col(channel).is_(None), col(channel) != col(NgsiOutbox.digest))
            )
            if per_entity_backoff:
                stmt = stmt.where(
                    or_(
                        col(NgsiOutbox.next_attempt_at).is_(None),
                        col(NgsiOutbox.next_attempt_at) <= _now(),
                    )
                )
            stmt = stmt.order_by(col(NgsiOutbox.changed_at), col(NgsiOutbox.entity_id))
            rows = (await session.exec(stmt.limit(limit))).all()
            return [Pending(r.entity_id, r.entity_type, r.body, r.digest, r.attempts) for r in rows]

    async def _mark(self, channel: str, done: Sequence[Pending]) -> None:
        """The channel has this content of these entities (a newer one stays pending)."""
        if not done:
            return
        async with self.db.sessions() as session:
            for p in done:
                values: dict[str, Any] = {channel: p.digest}
                if channel == "broker_digest":
                    values |= {"attempts": 0, "next_attempt_at": None, "last_error": None}
                await session.exec(
                    update(NgsiOutbox)
                    .where(col(NgsiOutbox.entity_id) == p.entity_id)
                    .values(**values)
                )
            await session.commit()

    async def _failed(self, failed: Sequence[Pending], errors: dict[str, str]) -> None:
        """Retry these entities alone, later (back-off doubling per attempt)."""
        if not failed:
            return
        now = _now()
        async with self.db.sessions() as session:
            for p in failed:
                delay = min(self.ioc.retry_base_s * 2**p.attempts, self.ioc.retry_max_s)
                await session.exec(
                    update(NgsiOutbox)
                    .where(col(NgsiOutbox.entity_id) == p.entity_id)
                    .values(attempts=p.attempts + 1, next_attempt_at=now + timedelta(seconds=delay),
                            last_error=errors.get(p.entity_id, "failed")[:500])
                )  # fmt: skip
            await session.commit()
        self.stats.failed += len(failed)

    # -- broker ------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.ioc.context_in_body:
            headers["Content-Type"] = "application/ld+json"
        else:
            headers["Content-Type"] = "application/json"
            headers["Link"] = (
                f'<{self.ioc.context_url}>; rel="http://www.w3.org/ns/json-ld#context"; '
                'type="application/ld+json"'
            )
        if self.ioc.tenant is not None:
            headers["NGSILD-Tenant"] = self.ioc.tenant
        if self.ioc.token is not None:
            headers["Authorization"] = f"Bearer {self.ioc.token.get_secret_value()}"
        return headers

    def _body(self, entity: Entity) -> Entity:
        if self.ioc.context_in_body:
            return {**entity, "@context": [self.ioc.context_url, CORE_CONTEXT]}
        return entity

    async def _broker_loop(self) -> None:
        assert self.ioc.ngsi_ld_url is not None
        backoff = self.ioc.retry_base_s
        base = self.ioc.ngsi_ld_url.rstrip("/")
        async with httpx.AsyncClient(base_url=base, timeout=self.ioc.timeout_s) as client:
            while True:
                try:
                    await self.drain_broker(client)
                except BrokerUnavailable as exc:
                    self.stats.outages += 1
                    log.warning("NGSI-LD broker unavailable (retry in %.1f s): %s", backoff, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.ioc.retry_max_s)
                    continue
                backoff = self.ioc.retry_base_s
                # new changes wake it at once; per-entity retries fall due by themselves
                try:
                    async with asyncio.timeout(self.ioc.debounce_s):
                        await self._broker_wanted.wait()
                except TimeoutError:
                    pass
                self._broker_wanted.clear()

    async def drain_broker(self, client: httpx.AsyncClient) -> None:
        """Send every due pending row, a batch at a time; :class:`BrokerUnavailable` on an
        outage (what is not sent stays pending)."""
        while True:
            batch = await self._due(
                NgsiOutbox.broker_digest, limit=self.ioc.batch_size, per_entity_backoff=True
            )
            if not batch:
                return
            upserts = [p for p in batch if p.body is not None]
            deletes = [p for p in batch if p.body is None]
            if upserts:
                payload = [self._body(p.body) for p in upserts if p.body is not None]
                await self._send(client, UPSERT_PATH, payload, upserts)
            if deletes:
                await self._send(client, DELETE_PATH, [p.entity_id for p in deletes], deletes)

    async def _send(
        self, client: httpx.AsyncClient, path: str, payload: list[Any], sent: list[Pending]
    ) -> None:
        self.stats.requests += 1
        try:
            response = await client.post(path, json=payload, headers=self._headers())
        except httpx.HTTPError as exc:
            raise BrokerUnavailable(f"{path}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status >= 500 or status in OUTAGE_STATUSES:
            raise BrokerUnavailable(f"{path}: HTTP {status} {response.text[:200]}")
        if status in (200, 201, 204):
            await self._mark("broker_digest", sent)
            self.stats.sent += len(sent)
            return
        if status == 207:
            ok, errors = _multi_status(response)
            if path == DELETE_PATH:  # an entity the broker does not have is deleted enough
                ok |= {i for i, e in errors.items() if "404" in e or "NotFound" in e}
            done = [p for p in sent if p.entity_id in ok]
            await self._mark("broker_digest", done)
            self.stats.sent += len(done)
            failed = [p for p in sent if p.entity_id not in ok]
            for p in failed:
                log.warning("NGSI-LD: %s refused: %s", p.entity_id, errors.get(p.entity_id))
            await self._failed(failed, errors)
            return
        # 400 and other refusals of the whole batch: each entity is retried with its back-off
        text = f"HTTP {status} {response.text[:300]}"
        log.warning("NGSI-LD: the broker refused a batch of %d: %s", len(sent), text)
        await self._failed(sent, {p.entity_id: text for p in sent})

    # -- MQTT --------------------------------------------------------------------------------

    async def _mqtt_loop(self) -> None:
        backoff = self.ioc.retry_base_s
        while True:
            try:
                await self.drain_mqtt()
            except GatewayUnavailable as exc:
                log.warning("NGSI on MQTT: not published now (retry in %.1f s): %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.ioc.retry_max_s)
                continue
            backoff = self.ioc.retry_base_s
            try:
                async with asyncio.timeout(self.ioc.debounce_s):
                    await self._mqtt_wanted.wait()
            except TimeoutError:
                pass
            self._mqtt_wanted.clear()

    async def drain_mqtt(self) -> None:
        """Publish every pending row on MQTT (retained, QoS 1)."""
        assert self.mqtt is not None
        prefix = self.settings.mqtt.prefix
        while True:
            batch = await self._due(
                NgsiOutbox.mqtt_digest, limit=self.ioc.batch_size, per_entity_backoff=False
            )
            if not batch:
                return
            link = self.mqtt()
            if link is None:
                raise GatewayUnavailable("the MQTT link is not up")
            done: list[Pending] = []
            try:
                for p in batch:
                    payload = b"" if p.body is None else json.dumps(p.body).encode()
                    topic = mqtt_topic(prefix, p.entity_type, p.entity_id)
                    await link.publish(topic, payload, qos=1, retain=True)
                    done.append(p)
                    self.stats.mqtt_published += 1
            finally:
                await self._mark("mqtt_digest", done)


def _multi_status(response: httpx.Response) -> tuple[set[str], dict[str, str]]:
    """``{success: [id...], errors: [{entityId, error}...]}`` -> done ids, error per id."""
    try:
        body = response.json()
    except ValueError:
        return set(), {}
    if not isinstance(body, dict):
        return set(), {}
    ok = {str(i) for i in body.get("success", []) if isinstance(i, str)}
    errors: dict[str, str] = {}
    for item in body.get("errors", []):
        if isinstance(item, dict) and isinstance(item.get("entityId"), str):
            errors[item["entityId"]] = json.dumps(item.get("error"))[:500]
    return ok, errors
